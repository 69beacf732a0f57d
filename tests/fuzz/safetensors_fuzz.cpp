// libFuzzer target: any bytes given to the safetensors header parser give a status or tensors
// that lie inside the input, never a crash, hang or out-of-bounds read. Built with clang and
// -DSLUICE_FUZZ=ON; run: build/bin/safetensors_fuzz -max_total_time=60
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "inference/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    auto parsed = sluice::inference::parse_safetensors_header(std::span(data, size), "fuzz");
    if (!parsed.ok()) {
        return 0;
    }
    uint64_t header = 0;
    for (int i = 7; i >= 0; --i) {
        header = (header << 8) | data[i];
    }
    const uint64_t data_size = size - 8 - header;
    for (const auto& tensor : *parsed) {
        if (tensor.begin > tensor.end || tensor.end > data_size) {
            std::abort();  // accepted a range outside the file
        }
    }
    return 0;
}
