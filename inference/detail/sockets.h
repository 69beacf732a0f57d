#pragma once
// What the TCP bootstrap (tcp_bootstrap.h) and the TCP communicator's mesh (tcp_mesh.h) share:
// an owned file descriptor, "host:port" addresses, and waiting on one socket until a deadline.
//
// Thread safety: Fd is a value owned by one thread; the functions are free.

#include <chrono>
#include <string>
#include <string_view>
#include <utility>

#include "common/result.h"

namespace sluice::inference::detail {

// A file descriptor closed on destruction.
class Fd {
public:
    Fd() = default;
    explicit Fd(int fd) : fd_(fd) {}
    Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
    Fd& operator=(Fd&& other) noexcept {
        if (this != &other) {
            reset();
            fd_ = std::exchange(other.fd_, -1);
        }
        return *this;
    }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    ~Fd() { reset(); }

    int get() const { return fd_; }
    void reset();

private:
    int fd_ = -1;
};

struct HostPort {
    std::string host;  // without the brackets of an IPv6 literal
    std::string port;
};

// "host:port" or "[v6]:port"; kInvalidArgument starting with `who` ("bootstrap", ...) otherwise.
Result<HostPort> parse_host_port(const std::string& address, std::string_view who);

using SteadyTime = std::chrono::steady_clock::time_point;

// Milliseconds left until `deadline`, at least 0.
int remaining_ms(SteadyTime deadline);

// Polls `fd` for `events` until `deadline`: true when ready, false on timeout; kIoError starting
// with `who` when poll fails.
Result<bool> wait_for(int fd, short events, SteadyTime deadline, std::string_view who);

}  // namespace sluice::inference::detail
