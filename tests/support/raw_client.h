#pragma once
// A raw HTTP/1.1 connection for integration tests: it sends a request and may read part of the
// answer, or vanish without reading it (a client that aborts mid-stream).

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include <nlohmann/json.hpp>
#include <string>

namespace sluice::testing {

// A raw connection that sends a request and may vanish without reading the answer.
class RawClient {
public:
    RawClient(int port, std::string token) : token_(std::move(token)) {
        fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_port = htons(static_cast<uint16_t>(port));
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        REQUIRE(::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0);
        timeval timeout{30, 0};
        ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    }
    ~RawClient() { close(); }
    // Sends `request` as it is: for requests no HTTP client library would write.
    void send(const std::string& request) {
        REQUIRE(::write(fd_, request.data(), request.size()) ==
                static_cast<ssize_t>(request.size()));
    }
    void post(const std::string& path, const nlohmann::json& body) {
        const std::string payload = body.dump();
        const std::string request = "POST " + path +
                                    " HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer " + token_ +
                                    "\r\nContent-Type: application/json\r\nContent-Length: " +
                                    std::to_string(payload.size()) + "\r\n\r\n" + payload;
        REQUIRE(::write(fd_, request.data(), request.size()) ==
                static_cast<ssize_t>(request.size()));
    }
    // Reads until `needle` has arrived; returns everything read.
    std::string read_until(const std::string& needle) {
        char chunk[4096];
        while (received_.find(needle) == std::string::npos) {
            ssize_t n = ::read(fd_, chunk, sizeof(chunk));
            if (n <= 0) {
                break;
            }
            received_.append(chunk, static_cast<size_t>(n));
        }
        return received_;
    }
    // Reads until `needle` has arrived `count` times; returns everything read.
    std::string read_until_count(const std::string& needle, size_t count) {
        auto occurrences = [&] {
            size_t n = 0;
            for (size_t at = 0; (at = received_.find(needle, at)) != std::string::npos;
                 at += needle.size()) {
                ++n;
            }
            return n;
        };
        char chunk[4096];
        while (occurrences() < count) {
            ssize_t n = ::read(fd_, chunk, sizeof(chunk));
            if (n <= 0) {
                break;
            }
            received_.append(chunk, static_cast<size_t>(n));
        }
        return received_;
    }
    void close() {
        if (fd_ >= 0) {
            ::close(fd_);
            fd_ = -1;
        }
    }

private:
    std::string token_;
    int fd_ = -1;
    std::string received_;
};

}  // namespace sluice::testing
