#pragma once
// InstructionCounter: the instructions retired by the calling thread and by every thread it
// starts after the counter opens (Linux perf events, user and kernel mode). Benchmarks use it
// beside CPU time: on a machine shared with other work, CPU time per request moves with cache
// and scheduler contention, while instructions per request follow the work the code does.
//
// The counts of threads started after open() are added when those threads end, so read() once
// they have all been joined.
//
// Thread safety: owned by one thread.

#include <cstdint>
#include <optional>
#include <string>

namespace sluice::app {

class InstructionCounter {
public:
    // Opens and starts the counter; when the system refuses (no hardware counters in a virtual
    // machine, kernel.perf_event_paranoid too strict), the counter stays closed and read() gives
    // nothing. why_unavailable() then says why.
    InstructionCounter();
    ~InstructionCounter();
    InstructionCounter(const InstructionCounter&) = delete;
    InstructionCounter& operator=(const InstructionCounter&) = delete;

    // Instructions counted since the counter opened, or nothing when it could not open.
    std::optional<std::uint64_t> read() const;
    const std::string& why_unavailable() const { return why_unavailable_; }

private:
    int fd_ = -1;
    std::string why_unavailable_;
};

}  // namespace sluice::app
