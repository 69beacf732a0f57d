// `model.weights` reaches the backend the server opens: the cuda backend's formats (fp8, int4)
// named on a server that runs the cpu backend fail the load with the backend's reason, and a cpu
// format loads.
#include <doctest/doctest.h>

#include <string>

#include "app/model_host.h"
#include "tiny_model_folder.h"

using namespace sluice;
using namespace sluice::app;

namespace {

Status load_with(const testing::TinyModelFolder& folder, const std::string& weights) {
    ModelSettings settings;
    settings.path = folder.model_dir();
    settings.backend = "cpu";
    settings.weights = weights;
    ModelHost host(settings, nullptr);
    return host.load();
}

}  // namespace

TEST_CASE("model.weights: fp8 and int4 are refused on the cpu backend, bf16 loads") {
    testing::TinyModelFolder folder("model-weights");
    for (const std::string weights : {"fp8", "int4"}) {
        CAPTURE(weights);
        const Status status = load_with(folder, weights);
        REQUIRE_FALSE(status.ok());
        CHECK(status.message().find("fp8 and int4 weights are the cuda backend's") !=
              std::string::npos);
    }
    CHECK(load_with(folder, "bf16").ok());
}
