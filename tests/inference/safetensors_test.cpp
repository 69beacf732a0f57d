// safetensors: round trips, sharded folders, and malformed headers that must be errors.
#include "inference/safetensors.h"

#include <doctest/doctest.h>

#include <cstring>
#include <fstream>

#include "inference/safetensors_writer.h"
#include "inference_test_support.h"

namespace sluice::inference {
namespace {

std::vector<uint8_t> bytes_of(const std::vector<float>& values) {
    std::vector<uint8_t> bytes(values.size() * 4);
    std::memcpy(bytes.data(), values.data(), bytes.size());
    return bytes;
}

// A file of the given header text followed by `data_bytes` zero bytes.
std::vector<uint8_t> raw_file(const std::string& header, size_t data_bytes) {
    std::vector<uint8_t> file(8 + header.size() + data_bytes, 0);
    for (int i = 0; i < 8; ++i) {
        file[static_cast<size_t>(i)] = static_cast<uint8_t>(header.size() >> (8 * i));
    }
    std::memcpy(file.data() + 8, header.data(), header.size());
    return file;
}

Status parse_error(const std::string& header, size_t data_bytes) {
    auto file = raw_file(header, data_bytes);
    auto parsed = parse_safetensors_header(file, "t.safetensors");
    REQUIRE_FALSE(parsed.ok());
    CHECK(parsed.status().code() == StatusCode::kDataLoss);
    return parsed.status();
}

}  // namespace

TEST_CASE("safetensors: written tensors of every dtype read back exactly") {
    testing::TempDir dir;
    const std::vector<float> f32 = {1.5f, -2.25f, 0.0f, 3e-3f, 7.0f, -0.5f};
    std::vector<uint16_t> bf16(f32.size());
    convert_f32_to_bf16(f32, bf16.data());
    const std::vector<uint16_t> f16 = {0x3c00, 0xc000, 0x0001, 0x7bff};  // 1, -2, 2^-24, 65504
    const std::vector<uint8_t> fp8 = {0x38, 0xb8, 0x7e, 0x01};           // 1, -1, 448, 2^-9
    auto f32_bytes = bytes_of(f32);
    std::vector<TensorToWrite> tensors = {
        {"a.f32", DType::kF32, {2, 3}, f32_bytes},
        {"b.bf16", DType::kBF16, {6}, {reinterpret_cast<const uint8_t*>(bf16.data()), 12}},
        {"c.f16", DType::kF16, {4}, {reinterpret_cast<const uint8_t*>(f16.data()), 8}},
        {"d.fp8", DType::kF8E4M3, {2, 2}, fp8},
    };
    REQUIRE(write_safetensors(dir.file("m.safetensors"), tensors).ok());
    auto checkpoint = Checkpoint::open(dir.file("m.safetensors"));
    REQUIRE_MESSAGE(checkpoint.ok(), checkpoint.status().to_string());
    REQUIRE((*checkpoint)->tensors().size() == 4);

    const TensorView* a = (*checkpoint)->find("a.f32");
    REQUIRE(a != nullptr);
    CHECK(a->shape == std::vector<int64_t>{2, 3});
    std::vector<float> values(6);
    convert_to_f32(a->dtype, a->data, 6, values.data());
    CHECK(values == f32);

    const TensorView* b = (*checkpoint)->find("b.bf16");
    convert_to_f32(b->dtype, b->data, 6, values.data());
    for (size_t i = 0; i < f32.size(); ++i) {
        CHECK(values[i] == doctest::Approx(f32[i]).epsilon(1.0 / 128));
    }
    const TensorView* c = (*checkpoint)->find("c.f16");
    convert_to_f32(c->dtype, c->data, 4, values.data());
    CHECK(values[0] == 1.0f);
    CHECK(values[1] == -2.0f);
    CHECK(values[2] == std::ldexp(1.0f, -24));
    CHECK(values[3] == 65504.0f);
    const TensorView* d = (*checkpoint)->find("d.fp8");
    convert_to_f32(d->dtype, d->data, 4, values.data());
    CHECK(values[0] == 1.0f);
    CHECK(values[1] == -1.0f);
    CHECK(values[2] == 448.0f);
    CHECK(values[3] == std::ldexp(1.0f, -9));
}

TEST_CASE("safetensors: released pages read back the same; memory outside the mappings is kept") {
    testing::TempDir dir;
    std::vector<float> values(3 * 4096);  // several pages, so whole pages lie inside the tensor
    for (size_t i = 0; i < values.size(); ++i) {
        values[i] = static_cast<float>(i) * 0.25f;
    }
    auto value_bytes = bytes_of(values);
    std::vector<TensorToWrite> tensors = {{"w", DType::kF32, {3, 4096}, value_bytes}};
    REQUIRE(write_safetensors(dir.file("m.safetensors"), tensors).ok());
    auto checkpoint = Checkpoint::open(dir.file("m.safetensors"));
    REQUIRE(checkpoint.ok());
    const TensorView* w = (*checkpoint)->find("w");
    REQUIRE(w != nullptr);
    REQUIRE(std::memcmp(w->data, value_bytes.data(), value_bytes.size()) == 0);
    (*checkpoint)->release_pages(*w);
    CHECK(std::memcmp(w->data, value_bytes.data(), value_bytes.size()) == 0);

    // A view of memory the process owns (not one of the checkpoint's mappings) is left alone:
    // MADV_DONTNEED there would zero it.
    std::vector<uint8_t> owned = value_bytes;
    TensorView elsewhere = *w;
    elsewhere.data = owned.data();
    (*checkpoint)->release_pages(elsewhere);
    CHECK(owned == value_bytes);
    CHECK((*checkpoint)->is_mapped(*w));
    CHECK_FALSE((*checkpoint)->is_mapped(elsewhere));

    // A derived checkpoint: the base's tensors are still mapped (through the base), an added
    // one is held in memory and is kept as it is.
    std::vector<uint8_t> added_bytes = value_bytes;
    auto derived = Checkpoint::derive(std::move(*checkpoint),
                                      {{"added", DType::kF32, {3, 4096}, added_bytes}}, {});
    const TensorView* base_view = derived->find("w");
    const TensorView* added = derived->find("added");
    REQUIRE(base_view != nullptr);
    REQUIRE(added != nullptr);
    CHECK(derived->is_mapped(*base_view));
    CHECK_FALSE(derived->is_mapped(*added));
    derived->release_pages(*base_view);
    derived->release_pages(*added);
    CHECK(std::memcmp(base_view->data, value_bytes.data(), value_bytes.size()) == 0);
    CHECK(std::memcmp(added->data, value_bytes.data(), value_bytes.size()) == 0);
}

TEST_CASE("safetensors: a sharded folder opens as one checkpoint") {
    testing::TempDir dir;
    std::vector<std::vector<uint8_t>> data;
    std::vector<TensorToWrite> tensors;
    for (int i = 0; i < 5; ++i) {
        data.push_back(bytes_of(std::vector<float>(10, static_cast<float>(i))));
    }
    for (int i = 0; i < 5; ++i) {
        std::string name = "t";
        name += std::to_string(i);
        tensors.push_back({name, DType::kF32, {10}, data[static_cast<size_t>(i)]});
    }
    REQUIRE(write_safetensors_sharded(dir.path(), tensors, 80).ok());
    auto checkpoint = Checkpoint::open(dir.path());
    REQUIRE_MESSAGE(checkpoint.ok(), checkpoint.status().to_string());
    CHECK((*checkpoint)->n_files() == 3);
    for (int i = 0; i < 5; ++i) {
        std::string name = "t";
        name += std::to_string(i);
        const TensorView* t = (*checkpoint)->find(name);
        REQUIRE(t != nullptr);
        float first;
        std::memcpy(&first, t->data, 4);
        CHECK(first == static_cast<float>(i));
    }

    // An index that points a tensor at the wrong shard is an error naming the tensor.
    auto index = testing::load_json(dir.file("model.safetensors.index.json"));
    index["weight_map"]["t0"] = "model-00003-of-00003.safetensors";
    std::ofstream(dir.file("model.safetensors.index.json")) << index.dump();
    auto wrong = Checkpoint::open(dir.path());
    REQUIRE_FALSE(wrong.ok());
    CHECK(wrong.status().message().find("'t0'") != std::string::npos);

    // A missing shard is not found.
    index["weight_map"]["t0"] = "model-00001-of-00003.safetensors";
    index["weight_map"]["t9"] = "model-00009-of-00009.safetensors";
    std::ofstream(dir.file("model.safetensors.index.json")) << index.dump();
    CHECK(Checkpoint::open(dir.path()).status().code() == StatusCode::kNotFound);
}

TEST_CASE("safetensors: malformed headers are errors that say what is wrong") {
    CHECK(parse_safetensors_header(std::vector<uint8_t>(5), "t").status().code() ==
          StatusCode::kDataLoss);
    auto huge = raw_file("{}", 0);
    huge[7] = 0x7f;  // length far past the end
    CHECK(parse_safetensors_header(huge, "t").status().message().find("header length") !=
          std::string::npos);
    CHECK(parse_error("{not json", 0).message().find("not valid JSON") != std::string::npos);
    CHECK(parse_error("[1, 2]", 0).message().find("not a JSON object") != std::string::npos);
    CHECK(parse_error(R"({"x": {"dtype": "Q4", "shape": [1], "data_offsets": [0, 1]}})", 1)
              .message()
              .find("unknown dtype") != std::string::npos);
    CHECK(parse_error(R"({"x": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}})", 8)
              .message()
              .find("outside the data section") != std::string::npos);
    CHECK(parse_error(R"({"x": {"dtype": "F32", "shape": [3], "data_offsets": [0, 16]}})", 16)
              .message()
              .find("bytes for shape [3]") != std::string::npos);
    CHECK(parse_error(R"({"x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                          "y": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})",
                      12)
              .message()
              .find("overlap") != std::string::npos);
    CHECK(parse_error(R"({"x": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}})", 8)
              .message()
              .find("'x'") != std::string::npos);
    CHECK(parse_error(R"({"x": {"dtype": "F32", "shape": [4294967296, 4294967296],
                          "data_offsets": [0, 0]}})",
                      0)
              .message()
              .find("bytes for shape") != std::string::npos);
    CHECK(parse_error(R"({"x": {"dtype": "F32", "shape": [1], "data_offsets": [8, 4]}})", 8)
              .code() == StatusCode::kDataLoss);
    CHECK(parse_error(R"({"__metadata__": 3})", 0).message().find("__metadata__") !=
          std::string::npos);
}

TEST_CASE("safetensors: a missing checkpoint is not found") {
    testing::TempDir dir;
    CHECK(Checkpoint::open(dir.path()).status().code() == StatusCode::kNotFound);
    CHECK(Checkpoint::open(dir.file("absent.safetensors")).status().code() ==
          StatusCode::kNotFound);
}

}  // namespace sluice::inference
