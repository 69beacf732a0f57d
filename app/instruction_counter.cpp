#include "app/instruction_counter.h"

#include <linux/perf_event.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace sluice::app {

InstructionCounter::InstructionCounter() {
    perf_event_attr attr{};
    attr.size = sizeof(attr);
    attr.type = PERF_TYPE_HARDWARE;
    attr.config = PERF_COUNT_HW_INSTRUCTIONS;
    attr.disabled = 1;
    // Threads started later count too: the server's, the clients' and the audit writer's.
    attr.inherit = 1;
    attr.exclude_hv = 1;
    // The calling process (pid 0), on whichever CPU it runs (-1), in no group (-1).
    const long fd = ::syscall(SYS_perf_event_open, &attr, 0, -1, -1, PERF_FLAG_FD_CLOEXEC);
    if (fd < 0) {
        why_unavailable_ = std::string("perf_event_open: ") + std::strerror(errno);
        return;
    }
    fd_ = static_cast<int>(fd);
    ::ioctl(fd_, PERF_EVENT_IOC_RESET, 0);
    ::ioctl(fd_, PERF_EVENT_IOC_ENABLE, 0);
}

InstructionCounter::~InstructionCounter() {
    if (fd_ >= 0) {
        ::close(fd_);
    }
}

std::optional<std::uint64_t> InstructionCounter::read() const {
    if (fd_ < 0) {
        return std::nullopt;
    }
    std::uint64_t count = 0;
    if (::read(fd_, &count, sizeof(count)) != static_cast<ssize_t>(sizeof(count))) {
        return std::nullopt;
    }
    return count;
}

}  // namespace sluice::app
