#pragma once
// SLUICE_CHECK: an always-on assertion for bugs (broken invariants), never for what input, network
// or disk can cause. On failure it prints file:line, the condition and the message, then aborts:
// restart is the recovery.

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace sluice::detail {

[[noreturn]] inline void check_failed(const char* file, int line, const char* condition,
                                      std::string_view message) {
    std::fprintf(stderr, "%s:%d: check failed: %s: %.*s\n", file, line, condition,
                 static_cast<int>(message.size()), message.data());
    std::fflush(stderr);
    std::abort();
}

}  // namespace sluice::detail

#define SLUICE_CHECK(cond, msg)                                                  \
    do {                                                                         \
        if (!(cond)) [[unlikely]] {                                              \
            ::sluice::detail::check_failed(__FILE__, __LINE__, #cond, (msg));    \
        }                                                                        \
    } while (false)
