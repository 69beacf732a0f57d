// The tokenizer fuzz body (tests/fuzz/tokenizer_fuzz_body.h) over a bounded, seeded set of
// inputs, so that every build exercises it without libFuzzer: random bytes, random UTF-8 with
// the characters the tokenizer finds hardest, and the committed reference texts mutated.
#include <random>

#include "../fuzz/tokenizer_fuzz_body.h"
#include "tokenizer_fixture.h"

namespace sluice::inference {
namespace {

std::string random_bytes(std::mt19937& rng) {
    std::string out(rng() % 64, '\0');
    for (char& c : out) {
        // Bias towards bytes that matter in UTF-8: ASCII, continuation bytes, lead bytes.
        switch (rng() % 4) {
            case 0: c = static_cast<char>(rng() % 0x80); break;
            case 1: c = static_cast<char>(0x80 + rng() % 0x40); break;
            case 2: c = static_cast<char>(0xC0 + rng() % 0x40); break;
            default: c = static_cast<char>(rng() % 256); break;
        }
    }
    return out;
}

std::string random_utf8(std::mt19937& rng) {
    static const char32_t kHard[] = {' ', '\n', '\r', '\t', '\'', 's', 'L', '1', 0x85, 0xA0,
                                     0x301, 0x200D, 0x3000, 0x4E2D, 0x1F600, 0x1F3FD, 0xFE0F,
                                     0x10FFFF, 0x1D2C0, '<', '|', '>'};
    std::string out;
    std::size_t n = rng() % 40;
    for (std::size_t i = 0; i < n; ++i) {
        char32_t cp = 0;
        if (rng() % 8 == 0) {
            out += "<|im_end|>";
            continue;
        }
        if (rng() % 2 == 0) {
            cp = kHard[rng() % std::size(kHard)];
        } else {
            do {
                cp = rng() % 0x110000;
            } while (cp >= 0xD800 && cp <= 0xDFFF);
        }
        detail::append_utf8(out, cp);
    }
    return out;
}

TEST_CASE("fuzz body over 20,000 random byte strings and random utf-8") {
    const Tokenizer& tokenizer = testing::dbrx_tokenizer();
    std::mt19937 rng(20240531);
    for (int i = 0; i < 20000; ++i) {
        std::string input = i % 2 == 0 ? random_bytes(rng) : random_utf8(rng);
        std::string problem = fuzz::check_tokenizer_input(tokenizer, input);
        REQUIRE_MESSAGE(problem.empty(), problem << " for input " << testing::shown(input));
    }
}

TEST_CASE("fuzz body over mutated reference texts") {
    const Tokenizer& tokenizer = testing::dbrx_tokenizer();
    auto cases = testing::read_cases(std::filesystem::path(SLUICE_SOURCE_DIR) /
                                     "tests/inference/data/tokenizer_cases.jsonl");
    REQUIRE(!cases.empty());
    std::mt19937 rng(7);
    for (const auto& c : cases) {
        for (int round = 0; round < 10; ++round) {
            std::string input = c.text;
            if (!input.empty()) {
                // Flip, drop or duplicate a byte: often breaks UTF-8, sometimes not.
                std::size_t at = rng() % input.size();
                switch (rng() % 3) {
                    case 0: input[at] = static_cast<char>(input[at] ^ (1 << (rng() % 8))); break;
                    case 1: input.erase(at, 1); break;
                    default: input.insert(at, 1, input[at]); break;
                }
            }
            std::string problem = fuzz::check_tokenizer_input(tokenizer, input);
            REQUIRE_MESSAGE(problem.empty(), problem << " for input " << testing::shown(input));
        }
    }
}

}  // namespace
}  // namespace sluice::inference
