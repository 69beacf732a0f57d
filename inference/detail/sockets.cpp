#include "inference/detail/sockets.h"

#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace sluice::inference::detail {

void Fd::reset() {
    if (fd_ >= 0) {
        ::close(fd_);
    }
    fd_ = -1;
}

Result<HostPort> parse_host_port(const std::string& address, std::string_view who) {
    const size_t colon = address.rfind(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == address.size()) {
        return invalid_argument(std::string(who) + ": address `" + address + "` is not host:port");
    }
    std::string host = address.substr(0, colon);
    if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
        host = host.substr(1, host.size() - 2);  // [::1]:29500
    }
    const std::string port = address.substr(colon + 1);
    if (port.size() > 5 ||
        !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
        std::stoi(port) > 65535) {
        return invalid_argument(std::string(who) + ": port of `" + address +
                                "` is not a number in [0, 65535]");
    }
    return HostPort{host, port};
}

int remaining_ms(SteadyTime deadline) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    return static_cast<int>(std::max<int64_t>(left.count(), 0));
}

Result<bool> wait_for(int fd, short events, SteadyTime deadline, std::string_view who) {
    for (;;) {
        pollfd p{fd, events, 0};
        const int n = ::poll(&p, 1, remaining_ms(deadline));
        if (n > 0) {
            return true;
        }
        if (n == 0) {
            return false;
        }
        if (errno != EINTR) {
            return Status(StatusCode::kIoError,
                          std::string(who) + ": poll: " + std::strerror(errno));
        }
    }
}

}  // namespace sluice::inference::detail
