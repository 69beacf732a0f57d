#pragma once
// Readiness of the server's subsystems, as /readyz reports it. Each subsystem (storage, http,
// later the model and indexes) registers a check and updates it; the server is ready when every
// check is ready and it is not draining. Reasons are short lower-case sentences for operators.
//
// Thread safety: thread-safe.

#include <mutex>
#include <string>
#include <vector>

namespace sluice::app {

class Readiness {
public:
    struct Check {
        std::string name;
        bool ready = false;
        std::string reason;
    };

    // Adds or updates the check called `name`.
    void set(const std::string& name, bool ready, std::string reason);
    // After SIGTERM: the server reports not ready so that load balancers stop sending traffic.
    void set_draining();

    bool draining() const;
    bool ready() const;
    std::vector<Check> checks() const;

private:
    mutable std::mutex mutex_;
    std::vector<Check> checks_;  // guarded by mutex_
    bool draining_ = false;      // guarded by mutex_
};

}  // namespace sluice::app
