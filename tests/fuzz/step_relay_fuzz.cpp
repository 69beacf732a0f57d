// libFuzzer target over the step relay's decoder (build with clang and -DSLUICE_FUZZ=ON):
//   build-fuzz/bin/step_relay_fuzz -max_total_time=600 corpus/
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "step_relay_fuzz_body.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string problem = sluice::inference::fuzz::check_relayed_call_input(
        std::string_view(reinterpret_cast<const char*>(data), size));
    if (!problem.empty()) {
        std::fprintf(stderr, "step relay fuzz: %s\n", problem.c_str());
        std::abort();
    }
    return 0;
}
