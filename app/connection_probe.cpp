#include "app/connection_probe.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <string>

namespace sluice::app {
namespace {

// The address and port of a socket address, as httplib writes them into a Request.
bool address_and_port(const sockaddr_storage& address, std::string* host, int* port) {
    std::array<char, INET6_ADDRSTRLEN> text{};
    if (address.ss_family == AF_INET) {
        const auto* in = reinterpret_cast<const sockaddr_in*>(&address);
        *port = ntohs(in->sin_port);
        return ::inet_ntop(AF_INET, &in->sin_addr, text.data(), text.size()) != nullptr &&
               (host->assign(text.data()), true);
    }
    if (address.ss_family == AF_INET6) {
        const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&address);
        *port = ntohs(in6->sin6_port);
        return ::inet_ntop(AF_INET6, &in6->sin6_addr, text.data(), text.size()) != nullptr &&
               (host->assign(text.data()), true);
    }
    return false;
}

bool is_connection_of(int fd, const httplib::Request& request) {
    sockaddr_storage local{};
    socklen_t length = sizeof(local);
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &length) != 0) {
        return false;  // not a socket
    }
    std::string host;
    int port = -1;
    if (!address_and_port(local, &host, &port) || port != request.local_port) {
        return false;
    }
    sockaddr_storage peer{};
    length = sizeof(peer);
    if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &length) != 0) {
        return false;  // the listener, or not connected
    }
    return address_and_port(peer, &host, &port) && port == request.remote_port &&
           host == request.remote_addr;
}

}  // namespace

ConnectionProbe::ConnectionProbe(const httplib::Request& request) {
    if (request.remote_port < 0 || request.local_port < 0) {
        return;
    }
    DIR* fds = ::opendir("/proc/self/fd");
    if (fds == nullptr) {
        return;
    }
    while (const dirent* entry = ::readdir(fds)) {
        char* end = nullptr;
        const long fd = std::strtol(entry->d_name, &end, 10);
        if (end == entry->d_name || *end != '\0' || fd == ::dirfd(fds)) {
            continue;
        }
        if (is_connection_of(static_cast<int>(fd), request)) {
            fd_ = static_cast<int>(fd);
            break;
        }
    }
    ::closedir(fds);
}

bool ConnectionProbe::client_gone() const {
    if (fd_ < 0) {
        return false;
    }
    char byte = 0;
    const ssize_t n = ::recv(fd_, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n > 0) {
        return false;
    }
    if (n == 0) {
        return true;  // orderly close
    }
    return errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
}

HangUpWatch::HangUpWatch(const httplib::Request& request) : probe_(request) {
    if (!probe_.found()) {
        return;  // nothing to watch
    }
    watcher_ = std::jthread([this](std::stop_token done) {
        std::unique_lock lock(mutex_);
        while (!wake_.wait_for(lock, done, std::chrono::milliseconds(500), [] { return false; })) {
            if (done.stop_requested()) {
                return;
            }
            if (probe_.client_gone()) {
                gone_.request_stop();
                return;
            }
        }
    });
}

HangUpWatch::~HangUpWatch() {
    if (watcher_.joinable()) {
        watcher_.request_stop();
        watcher_.join();
    }
}

}  // namespace sluice::app
