#pragma once
// StreamRegistry: the server-sent-event streams in flight, so that a shutdown can let them
// finish instead of cutting them (docs/design.md, "The HTTP server"). A stream holds a Ticket
// while it runs; at shutdown the server calls drain() (a stream that finishes then closes its
// connection instead of keeping it alive), waits for active() to reach 0 and, when its
// deadline nears, calls end_all(), after which every stream ends at its next poll with a final
// chunk and `data: [DONE]`.
//
// Thread safety: thread-safe.

#include <atomic>
#include <memory>

namespace sluice::app {

class StreamRegistry {
public:
    // Counts one stream while alive. Move-only.
    class Ticket {
    public:
        Ticket() = default;
        explicit Ticket(StreamRegistry* registry) : registry_(registry) {
            registry_->active_.fetch_add(1);
        }
        Ticket(Ticket&& other) noexcept : registry_(other.registry_) { other.registry_ = nullptr; }
        Ticket& operator=(Ticket&& other) noexcept {
            if (this != &other) {
                release();
                registry_ = other.registry_;
                other.registry_ = nullptr;
            }
            return *this;
        }
        Ticket(const Ticket&) = delete;
        Ticket& operator=(const Ticket&) = delete;
        ~Ticket() { release(); }

        // Whether the stream should end now (the server is about to stop).
        bool ending() const { return registry_ != nullptr && registry_->ending(); }
        // Whether the server is shutting down: a finished stream closes its connection rather
        // than keep it alive for another request.
        bool draining() const { return registry_ != nullptr && registry_->draining(); }

    private:
        void release() {
            if (registry_ != nullptr) {
                registry_->active_.fetch_sub(1);
                registry_ = nullptr;
            }
        }
        StreamRegistry* registry_ = nullptr;
    };

    Ticket enter() { return Ticket(this); }
    int active() const { return active_.load(); }
    void drain() { draining_.store(true); }
    bool draining() const { return draining_.load(); }
    void end_all() {
        draining_.store(true);
        ending_.store(true);
    }
    bool ending() const { return ending_.load(); }

private:
    std::atomic<int> active_{0};
    std::atomic<bool> draining_{false};
    std::atomic<bool> ending_{false};
};

}  // namespace sluice::app
