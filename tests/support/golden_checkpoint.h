#pragma once
// Rebuilds a golden DBRX checkpoint from the "checkpoint" section of its golden.json: the
// repository keeps the reference's outputs, not the weights, because every weight is a function
// of (seed, tensor name, element index). tests/golden/dbrx/golden_weights.py is the other
// implementation of the same generator (its docstring states it); the reference ran on what that
// script wrote, and each tensor's sha256 in golden.json proves that this rebuild is the same.

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "inference/detail/sha256.h"
#include "inference/dtype.h"
#include "inference/safetensors_writer.h"

namespace sluice::inference::testing {

inline uint64_t golden_fnv1a64(std::string_view name) {
    uint64_t h = 0xCBF29CE484222325ULL;
    for (unsigned char byte : name) {
        h = (h ^ byte) * 0x100000001B3ULL;
    }
    return h;
}

// Word `index` of the stream of `name` under `seed` (SplitMix64's output function over a
// counter; unsigned arithmetic wraps modulo 2^64 as the generator's definition wants).
inline uint64_t golden_word(uint64_t seed, std::string_view name, uint64_t index) {
    uint64_t z = seed * 0x9E3779B97F4A7C15ULL + golden_fnv1a64(name) + index;
    z += 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

// The float32 values of one tensor spec {name, shape, range, width (null for norms)}.
inline std::vector<float> golden_tensor_values(uint64_t seed, const nlohmann::json& spec) {
    const auto name = spec.at("name").get<std::string>();
    const auto range = spec.at("range").get<int64_t>();
    int64_t count = 1;
    for (const auto& dim : spec.at("shape")) {
        count *= dim.get<int64_t>();
    }
    const bool norm = spec.at("width").is_null();
    const double width = norm ? 0.0 : spec.at("width").get<double>();
    std::vector<float> values(static_cast<size_t>(count));
    for (int64_t i = 0; i < count; ++i) {
        const uint64_t x = golden_word(seed, name, static_cast<uint64_t>(i)) >> 11;
        const auto step = static_cast<int64_t>(x % static_cast<uint64_t>(2 * range + 1)) - range;
        const double value = norm ? 1.0 + static_cast<double>(step) / 4096.0
                                  : std::nearbyint(static_cast<double>(step) * width) / 4096.0;
        values[static_cast<size_t>(i)] = static_cast<float>(value);
    }
    return values;
}

// Token ids of the case `name`: the stream "ids/<name>" modulo the vocabulary.
inline std::vector<int32_t> golden_token_ids(uint64_t seed, const std::string& name, size_t count,
                                             int64_t vocab) {
    std::vector<int32_t> ids(count);
    for (size_t i = 0; i < count; ++i) {
        ids[i] = static_cast<int32_t>(golden_word(seed, "ids/" + name, i) %
                                      static_cast<uint64_t>(vocab));
    }
    return ids;
}

// Writes config.json and the weights (one file, or about the section's number of shards) into
// `dir`, checking each tensor's bytes against the sha256 the reference's side recorded.
inline void write_golden_checkpoint(const nlohmann::json& checkpoint, const std::string& dir) {
    const auto seed = checkpoint.at("seed").get<uint64_t>();
    const bool bf16 = checkpoint.at("dtype").get<std::string>() == "bfloat16";
    {
        std::ofstream config(dir + "/config.json");
        config << checkpoint.at("config").dump(2);
        REQUIRE_MESSAGE(config.good(), "cannot write " << dir << "/config.json");
    }
    std::map<std::string, nlohmann::json> specs;  // sorted by name, as the writer sorts them
    for (const auto& spec : checkpoint.at("tensors")) {
        specs.emplace(spec.at("name").get<std::string>(), spec);
    }
    std::vector<std::vector<uint8_t>> storage;
    std::vector<TensorToWrite> tensors;
    for (const auto& [name, spec] : specs) {
        const std::vector<float> values = golden_tensor_values(seed, spec);
        std::vector<uint8_t> bytes;
        if (bf16) {
            std::vector<uint16_t> bits(values.size());
            convert_f32_to_bf16(values, bits.data());
            bytes.resize(bits.size() * 2);
            std::memcpy(bytes.data(), bits.data(), bytes.size());
        } else {
            bytes.resize(values.size() * 4);
            std::memcpy(bytes.data(), values.data(), bytes.size());
        }
        const std::string digest = detail::sha256_hex(
            std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
        REQUIRE_MESSAGE(digest == spec.at("sha256").get<std::string>(),
                        "the rebuilt tensor " << name
                                              << " differs from the one the reference read "
                                                 "(golden_weights.py and this header disagree)");
        storage.push_back(std::move(bytes));
        tensors.push_back({name, bf16 ? DType::kBF16 : DType::kF32,
                           spec.at("shape").get<std::vector<int64_t>>(), storage.back()});
    }
    const auto shards = checkpoint.at("shards").get<int64_t>();
    if (shards == 1) {
        const Status written = write_safetensors(dir + "/model.safetensors", tensors);
        REQUIRE_MESSAGE(written.ok(), written.to_string());
        return;
    }
    // Sharded as the project's writer shards (by bytes): the reference's files were cut by
    // tensor count, but which file holds a tensor does not change what is read.
    int64_t total = 0;
    for (const TensorToWrite& t : tensors) {
        total += static_cast<int64_t>(t.bytes.size());
    }
    const Status written = write_safetensors_sharded(dir, tensors, total / shards + 1);
    REQUIRE_MESSAGE(written.ok(), written.to_string());
}

}  // namespace sluice::inference::testing
