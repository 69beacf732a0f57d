// main() of the GPU parity tests: exits 77 (ctest's SKIP_RETURN_CODE) when no GPU is visible, so
// that the suite reports a skip instead of a failure on machines without one.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <iostream>

#include "inference/devices.h"

int main(int argc, char** argv) {
    auto gpus = sluice::inference::visible_gpus();
    if (!gpus.ok() || gpus->empty()) {
        std::cout << "inference_gpu_tests: skipped, no GPU is visible"
                  << (gpus.ok() ? "" : " (" + gpus.status().message() + ")") << "\n";
        return 77;
    }
    std::cout << "inference_gpu_tests on " << gpus->front().name << "\n";
    doctest::Context context(argc, argv);
    return context.run();
}
