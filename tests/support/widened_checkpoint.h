#pragma once
// A plain checkpoint holding a quantised checkpoint's widened values: the model the CPU backend
// runs when it loads the quantised one, written out so that tests can compare the two exactly.

#include <doctest/doctest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "inference/safetensors.h"
#include "inference/model_config.h"
#include "inference/quantized_checkpoint.h"
#include "inference/safetensors_writer.h"

namespace sluice::inference::testing {

// Writes into `plain` the config.json of `source_dir` (the unquantised model) and one
// model.safetensors of `quantized_dir`'s tensors widened as its config says (fp8 or int4).
inline void write_widened_checkpoint(const std::string& source_dir,
                                     const std::string& quantized_dir, const std::string& plain) {
    std::filesystem::create_directories(plain);
    std::filesystem::copy_file(source_dir + "/config.json", plain + "/config.json");
    auto config = load_model_config(quantized_dir);
    REQUIRE(config.ok());
    auto quantized = Checkpoint::open(quantized_dir);
    REQUIRE(quantized.ok());
    auto widened = dequantize_checkpoint(std::move(*quantized), *config);
    std::vector<TensorToWrite> tensors;
    for (const auto& [name, view] : widened->tensors()) {
        CHECK(name.find("_scale") == std::string::npos);
        tensors.push_back(
            {name, view.dtype, view.shape, {view.data, static_cast<size_t>(view.n_bytes)}});
    }
    REQUIRE(write_safetensors(plain + "/model.safetensors", tensors).ok());
}

}  // namespace sluice::inference::testing
