#pragma once
// RateWindow: the counts behind a limit (or one caller on one endpoint): tokens and requests of
// the current UTC day, and of the last 60 seconds in one-second slots (a sliding minute exact to
// the second).
//
// Thread safety: a value type; Usage guards its windows with its mutex.

#include <array>
#include <cstdint>
#include <optional>

namespace sluice::governance::detail {

struct RateWindow {
    static constexpr std::int64_t kSlots = 60;
    static constexpr std::int64_t kDay = 86'400;
    struct Slot {
        std::int64_t second = -1;
        std::int64_t tokens = 0;
        std::int64_t requests = 0;
    };

    std::int64_t day = -1;
    std::int64_t day_tokens = 0;
    std::int64_t day_requests = 0;
    std::array<Slot, kSlots> slots{};

    // Adds (or, negative, takes back) counts charged at second `at_s`, as seen at `now_s`:
    // the day part when at_s falls on today, the slot when at_s is within the last minute.
    // Counts never go below zero.
    void charge(std::int64_t at_s, std::int64_t now_s, std::int64_t tokens,
                std::int64_t requests);
    // Adds another window's counts that are still current at `now_s`.
    void merge(const RateWindow& other, std::int64_t now_s);

    std::int64_t minute_tokens(std::int64_t now_s) const;
    std::int64_t minute_requests(std::int64_t now_s) const;
    std::int64_t today_tokens(std::int64_t now_s) const;

    // Seconds from now_s until `need` more fits under `max` in the minute window if nothing
    // else is charged; nullopt when need > max (it never fits).
    std::optional<std::int64_t> minute_retry_after(std::int64_t now_s, std::int64_t need,
                                                   std::int64_t max, bool tokens) const;
    // Seconds until the next UTC midnight; nullopt when need > max.
    static std::optional<std::int64_t> day_retry_after(std::int64_t now_s, std::int64_t need,
                                                       std::int64_t max);

private:
    void roll(std::int64_t now_s);
    bool live(const Slot& slot, std::int64_t now_s) const {
        return slot.second > now_s - kSlots && slot.second <= now_s;
    }
};

}  // namespace sluice::governance::detail
