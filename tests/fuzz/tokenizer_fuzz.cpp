// libFuzzer target over the tokenizer (build with clang and -DSLUICE_FUZZ=ON):
//   build-fuzz/bin/tokenizer_fuzz -max_total_time=600 corpus/
// SLUICE_TOKENIZER names the rank file (default: the shipped cl100k_base.tiktoken).
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "inference/tokenizer_files.h"
#include "tokenizer_fuzz_body.h"

namespace {

const sluice::inference::Tokenizer& fuzz_tokenizer() {
    static const std::unique_ptr<sluice::inference::Tokenizer> tokenizer = [] {
        const char* env = std::getenv("SLUICE_TOKENIZER");
        auto opened = sluice::inference::open_tokenizer(
            env != nullptr ? env : SLUICE_SOURCE_DIR "/inference/assets/cl100k_base.tiktoken");
        if (!opened) {
            std::fprintf(stderr, "%s\n", opened.status().to_string().c_str());
            std::abort();
        }
        return std::move(*opened);
    }();
    return *tokenizer;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string problem = sluice::inference::fuzz::check_tokenizer_input(
        fuzz_tokenizer(), std::string_view(reinterpret_cast<const char*>(data), size));
    if (!problem.empty()) {
        std::fprintf(stderr, "tokenizer fuzz: %s\n", problem.c_str());
        std::abort();
    }
    return 0;
}
