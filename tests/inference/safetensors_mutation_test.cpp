// Random mutations of a valid safetensors header: every outcome is a status, never a crash, and
// whatever is accepted lies inside the file. The libFuzzer target tests/fuzz/safetensors_fuzz.cpp
// explores the same function without bounds; this test keeps a fixed-seed sample in every CI run.
#include <doctest/doctest.h>

#include <cstring>
#include <random>

#include "inference/safetensors.h"
#include "inference/safetensors_writer.h"
#include "inference_test_support.h"

namespace sluice::inference {
namespace {

std::vector<uint8_t> valid_file() {
    testing::TempDir dir;
    std::vector<float> a(12, 1.0f);
    std::vector<uint16_t> b(6, 0x3f80);
    std::vector<TensorToWrite> tensors = {
        {"layer.0.weight", DType::kF32, {3, 4}, {reinterpret_cast<uint8_t*>(a.data()), 48}},
        {"layer.1.bias", DType::kBF16, {6}, {reinterpret_cast<uint8_t*>(b.data()), 12}},
    };
    REQUIRE(write_safetensors(dir.file("m.safetensors"), tensors).ok());
    auto mapped = MappedFile::open(dir.file("m.safetensors"));
    REQUIRE(mapped.ok());
    return {mapped->bytes().begin(), mapped->bytes().end()};
}

void check_accepted(const std::vector<TensorInfo>& tensors, const std::vector<uint8_t>& file) {
    uint64_t header = 0;
    for (int i = 7; i >= 0; --i) {
        header = (header << 8) | file[static_cast<size_t>(i)];
    }
    const uint64_t data_size = file.size() - 8 - header;
    for (const TensorInfo& t : tensors) {
        REQUIRE(t.begin <= t.end);
        REQUIRE(t.end <= data_size);
    }
}

}  // namespace

TEST_CASE("safetensors: 20,000 random header mutations are statuses, never crashes") {
    const std::vector<uint8_t> original = valid_file();
    REQUIRE(parse_safetensors_header(original, "m").ok());
    uint64_t header_len = 0;
    for (int i = 7; i >= 0; --i) {
        header_len = (header_len << 8) | original[static_cast<size_t>(i)];
    }
    std::mt19937_64 rng(20240611);
    std::string alphabet = "{}[]\",:0123456789-eE.FBI_8 abcdefghijklmnopqrstuvwxyz\\";
    alphabet.push_back('\0');
    alphabet.push_back('\xff');
    int accepted = 0;
    for (int iteration = 0; iteration < 20000; ++iteration) {
        std::vector<uint8_t> file = original;
        const int n_mutations = 1 + static_cast<int>(rng() % 4);
        for (int m = 0; m < n_mutations && !file.empty(); ++m) {
            const size_t header_end = 8 + static_cast<size_t>(header_len);
            const size_t pos = rng() % std::min(file.size(), header_end + 1);
            switch (rng() % 6) {
                case 0:  // overwrite a header byte with a JSON-ish character
                    if (pos < file.size()) {
                        file[pos] = static_cast<uint8_t>(alphabet[rng() % alphabet.size()]);
                    }
                    break;
                case 1:  // flip a bit anywhere in the length or header
                    if (pos < file.size()) {
                        file[pos] ^= static_cast<uint8_t>(1u << (rng() % 8));
                    }
                    break;
                case 2:  // insert a byte (shifts everything after it)
                    file.insert(file.begin() + static_cast<std::ptrdiff_t>(pos),
                                static_cast<uint8_t>(alphabet[rng() % alphabet.size()]));
                    break;
                case 3:  // delete a byte
                    if (pos < file.size()) {
                        file.erase(file.begin() + static_cast<std::ptrdiff_t>(pos));
                    }
                    break;
                case 4:  // change a digit, often an offset or a size
                    for (size_t i = 8 + rng() % header_len; i < header_end && i < file.size(); ++i) {
                        if (file[i] >= '0' && file[i] <= '9') {
                            file[i] = static_cast<uint8_t>('0' + rng() % 10);
                            break;
                        }
                    }
                    break;
                default:  // truncate the file
                    file.resize(rng() % (file.size() + 1));
                    break;
            }
        }
        auto parsed = parse_safetensors_header(file, "mutated");
        if (parsed.ok()) {
            ++accepted;
            check_accepted(*parsed, file);
        } else {
            REQUIRE(parsed.status().code() == StatusCode::kDataLoss);
            REQUIRE_FALSE(parsed.status().message().empty());
        }
    }
    // Some mutations (a space changed to another space, a digit to itself) keep the file valid.
    CHECK(accepted > 0);
    CHECK(accepted < 20000);
}

}  // namespace sluice::inference
