#include "app/tool_calls.h"

#include <cstdint>
#include <random>

namespace sluice::app {

std::string fresh_id(std::string_view prefix) {
    thread_local std::mt19937_64 generator{std::random_device{}()};
    static constexpr char kHex[] = "0123456789abcdef";
    std::string id(prefix);
    for (int part = 0; part < 2; ++part) {
        uint64_t bits = generator();
        for (int i = 0; i < 12; ++i) {
            id += kHex[(bits >> (4 * i)) & 0xf];
        }
    }
    return id;
}

}  // namespace sluice::app
