#include "governance/detail/rate_window.h"

#include <algorithm>
#include <vector>

namespace sluice::governance::detail {

void RateWindow::roll(std::int64_t now_s) {
    std::int64_t today = now_s / kDay;
    if (day != today) {
        day = today;
        day_tokens = 0;
        day_requests = 0;
    }
}

void RateWindow::charge(std::int64_t at_s, std::int64_t now_s, std::int64_t tokens,
                        std::int64_t requests) {
    roll(now_s);
    if (at_s / kDay == day) {
        day_tokens = std::max<std::int64_t>(0, day_tokens + tokens);
        day_requests = std::max<std::int64_t>(0, day_requests + requests);
    }
    if (at_s <= now_s - kSlots || at_s > now_s) {
        return;
    }
    Slot& slot = slots[static_cast<std::size_t>(at_s % kSlots)];
    if (slot.second != at_s) {
        // The slot holds a second that left the window (the same slot 60 s ago, or never).
        slot = Slot{at_s, 0, 0};
    }
    slot.tokens = std::max<std::int64_t>(0, slot.tokens + tokens);
    slot.requests = std::max<std::int64_t>(0, slot.requests + requests);
}

void RateWindow::merge(const RateWindow& other, std::int64_t now_s) {
    roll(now_s);
    if (other.day == day) {
        day_tokens += other.day_tokens;
        day_requests += other.day_requests;
    }
    for (const Slot& theirs : other.slots) {
        if (!live(theirs, now_s)) {
            continue;
        }
        Slot& slot = slots[static_cast<std::size_t>(theirs.second % kSlots)];
        if (slot.second != theirs.second) {
            slot = Slot{theirs.second, 0, 0};
        }
        slot.tokens += theirs.tokens;
        slot.requests += theirs.requests;
    }
}

std::int64_t RateWindow::minute_tokens(std::int64_t now_s) const {
    std::int64_t sum = 0;
    for (const Slot& slot : slots) {
        sum += live(slot, now_s) ? slot.tokens : 0;
    }
    return sum;
}

std::int64_t RateWindow::minute_requests(std::int64_t now_s) const {
    std::int64_t sum = 0;
    for (const Slot& slot : slots) {
        sum += live(slot, now_s) ? slot.requests : 0;
    }
    return sum;
}

std::int64_t RateWindow::today_tokens(std::int64_t now_s) const {
    return day == now_s / kDay ? day_tokens : 0;
}

std::optional<std::int64_t> RateWindow::minute_retry_after(std::int64_t now_s, std::int64_t need,
                                                           std::int64_t max, bool tokens) const {
    if (need > max) {
        return std::nullopt;
    }
    std::vector<Slot> current;
    for (const Slot& slot : slots) {
        if (live(slot, now_s)) {
            current.push_back(slot);
        }
    }
    std::sort(current.begin(), current.end(),
              [](const Slot& a, const Slot& b) { return a.second < b.second; });
    std::int64_t used = tokens ? minute_tokens(now_s) : minute_requests(now_s);
    std::int64_t freed = 0;
    for (const Slot& slot : current) {
        freed += tokens ? slot.tokens : slot.requests;
        if (used - freed + need <= max) {
            return std::max<std::int64_t>(1, slot.second + kSlots - now_s);
        }
    }
    return 1;
}

std::optional<std::int64_t> RateWindow::day_retry_after(std::int64_t now_s, std::int64_t need,
                                                        std::int64_t max) {
    if (need > max) {
        return std::nullopt;
    }
    return (now_s / kDay + 1) * kDay - now_s;
}

}  // namespace sluice::governance::detail
