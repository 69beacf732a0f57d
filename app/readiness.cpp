#include "app/readiness.h"

namespace sluice::app {

void Readiness::set(const std::string& name, bool ready, std::string reason) {
    std::lock_guard lock(mutex_);
    for (Check& check : checks_) {
        if (check.name == name) {
            check.ready = ready;
            check.reason = std::move(reason);
            return;
        }
    }
    checks_.push_back(Check{name, ready, std::move(reason)});
}

void Readiness::set_draining() {
    std::lock_guard lock(mutex_);
    draining_ = true;
}

bool Readiness::draining() const {
    std::lock_guard lock(mutex_);
    return draining_;
}

bool Readiness::ready() const {
    std::lock_guard lock(mutex_);
    if (draining_ || checks_.empty()) {
        return false;
    }
    for (const Check& check : checks_) {
        if (!check.ready) {
            return false;
        }
    }
    return true;
}

std::vector<Readiness::Check> Readiness::checks() const {
    std::lock_guard lock(mutex_);
    return checks_;
}

}  // namespace sluice::app
