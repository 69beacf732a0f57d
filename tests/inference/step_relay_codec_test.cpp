// The wire format of the step relay (step_relay.h): random calls survive encode and decode field
// for field, and malformed messages (truncated, unknown version or kind, enums out of range,
// counts past the end, trailing bytes) are refused with the field and byte they break at. The
// decoder's fuzz body (tests/fuzz/step_relay_fuzz_body.h) runs here over a bounded, seeded set of
// random and mutated messages.
#include <doctest/doctest.h>

#include <cstring>
#include <random>

#include "../fuzz/step_relay_fuzz_body.h"
#include "inference/step_relay.h"

namespace sluice::inference {
namespace {

// A batch and the vectors its spans point into.
struct OwnedBatch {
    std::vector<std::vector<int32_t>> tokens;
    std::vector<std::vector<int32_t>> blocks;
    ForwardBatch batch;
};

int32_t any_i32(std::mt19937& rng) { return static_cast<int32_t>(rng()); }

float any_f32(std::mt19937& rng) {
    // Ordinary parameters mostly, sometimes any bit pattern (negative zero, infinities, NaNs).
    if (rng() % 4 == 0) {
        const uint32_t bits = rng();
        float v = 0;
        std::memcpy(&v, &bits, 4);
        return v;
    }
    return std::uniform_real_distribution<float>(0.0f, 2.0f)(rng);
}

OwnedBatch random_batch(std::mt19937& rng) {
    OwnedBatch owned;
    const size_t n = 1 + rng() % 6;
    const bool sampled = rng() % 3 == 0;
    owned.tokens.resize(n);
    owned.blocks.resize(n);
    for (size_t s = 0; s < n; ++s) {
        owned.tokens[s].resize(rng() % 24);
        for (int32_t& t : owned.tokens[s]) {
            t = rng() % 2 == 0 ? static_cast<int32_t>(rng() % 100352) : any_i32(rng);
        }
        owned.blocks[s].resize(rng() % 12);
        for (int32_t& b : owned.blocks[s]) {
            b = rng() % 2 == 0 ? static_cast<int32_t>(rng() % 4096) : any_i32(rng);
        }
        SequenceStep seq;
        seq.tokens = owned.tokens[s];
        seq.block_table = owned.blocks[s];
        seq.n_past = rng() % 4 == 0 ? any_i32(rng) : static_cast<int32_t>(rng() % 8192);
        seq.logits = static_cast<LogitsRows>(rng() % 3);
        seq.hidden = rng() % 2 == 0;
        owned.batch.sequences.push_back(seq);
    }
    if (sampled) {
        owned.batch.device_sample.resize(n);
        for (size_t s = 0; s < n; ++s) {
            if (rng() % 3 != 0) {
                DeviceSampling ds;
                ds.temperature = any_f32(rng);
                ds.top_k = rng() % 2 == 0 ? static_cast<int32_t>(rng() % 100) : any_i32(rng);
                ds.top_p = any_f32(rng);
                ds.min_p = any_f32(rng);
                ds.u = std::uniform_real_distribution<double>(0.0, 1.0)(rng);
                owned.batch.device_sample[s] = ds;
            }
        }
    }
    return owned;
}

bool same_bits(float a, float b) { return std::memcmp(&a, &b, sizeof(a)) == 0; }

void check_same_batch(const ForwardBatch& got, const ForwardBatch& want) {
    REQUIRE(got.sequences.size() == want.sequences.size());
    for (size_t s = 0; s < want.sequences.size(); ++s) {
        const SequenceStep& g = got.sequences[s];
        const SequenceStep& w = want.sequences[s];
        CHECK(std::vector<int32_t>(g.tokens.begin(), g.tokens.end()) ==
              std::vector<int32_t>(w.tokens.begin(), w.tokens.end()));
        CHECK(std::vector<int32_t>(g.block_table.begin(), g.block_table.end()) ==
              std::vector<int32_t>(w.block_table.begin(), w.block_table.end()));
        CHECK(g.n_past == w.n_past);
        CHECK(g.logits == w.logits);
        CHECK(g.hidden == w.hidden);
    }
    const bool any_sampled =
        std::ranges::any_of(want.device_sample, [](const auto& ds) { return ds.has_value(); });
    if (!any_sampled) {
        CHECK(got.device_sample.empty());
        return;
    }
    REQUIRE(got.device_sample.size() == want.sequences.size());
    for (size_t s = 0; s < want.sequences.size(); ++s) {
        const DeviceSampling* g = got.device_sample_of(s);
        const DeviceSampling* w = want.device_sample_of(s);
        REQUIRE((g == nullptr) == (w == nullptr));
        if (w != nullptr) {
            CHECK(same_bits(g->temperature, w->temperature));
            CHECK(g->top_k == w->top_k);
            CHECK(same_bits(g->top_p, w->top_p));
            CHECK(same_bits(g->min_p, w->min_p));
            CHECK(g->u == w->u);
        }
    }
}

// One forward entry: n_past 5, logits kLast, no hidden, tokens {7, 8}, blocks {3}, no sampling.
// Byte layout: 0 version, 1 kind, 2 n_sequences, 6 n_past, 10 logits, 11 hidden, 12 n_tokens,
// 16 tokens, 24 n_blocks, 28 blocks, 32 has_device_sample; 33 bytes in all.
std::string small_forward() {
    static const std::vector<int32_t> tokens = {7, 8};
    static const std::vector<int32_t> blocks = {3};
    ForwardBatch batch;
    batch.sequences.push_back({tokens, 5, blocks, LogitsRows::kLast, false});
    return encode_forward(batch);
}

void put_u32(std::string& message, size_t at, uint32_t v) {
    for (size_t i = 0; i < 4; ++i) {
        message[at + i] = static_cast<char>((v >> (8 * i)) & 0xff);
    }
}

std::string refusal(std::string_view message) {
    auto decoded = decode_relayed_call(message);
    REQUIRE_FALSE(decoded.ok());
    CHECK(decoded.status().code() == StatusCode::kInvalidArgument);
    return decoded.status().message();
}

}  // namespace

TEST_CASE("step relay codec: random forward batches decode to the same fields") {
    for (uint32_t seed = 1; seed <= 500; ++seed) {
        std::mt19937 rng(seed);
        const OwnedBatch owned = random_batch(rng);
        const std::string message = encode_forward(owned.batch);
        auto decoded = decode_relayed_call(message);
        REQUIRE_MESSAGE(decoded.ok(), "seed " << seed << ": " << decoded.status().to_string());
        RelayedCall call = std::move(*decoded);
        CHECK(call.kind == RelayedCall::Kind::kForward);
        check_same_batch(call.batch, owned.batch);
        // The spans follow the vectors through a move.
        RelayedCall moved = std::move(call);
        check_same_batch(moved.batch, owned.batch);
        CHECK(encode_forward(moved.batch) == message);
    }
}

TEST_CASE("step relay codec: configure_kv_cache and copy_kv_block round trip") {
    std::mt19937 rng(7);
    for (int i = 0; i < 100; ++i) {
        const KvCacheSpec spec{any_i32(rng), any_i32(rng)};
        auto configure = decode_relayed_call(encode_configure_kv_cache(spec));
        REQUIRE(configure.ok());
        CHECK(configure->kind == RelayedCall::Kind::kConfigureKvCache);
        CHECK(configure->spec.block_size == spec.block_size);
        CHECK(configure->spec.n_blocks == spec.n_blocks);
        CHECK(encode_configure_kv_cache(spec).size() == 10);

        const int32_t src = any_i32(rng);
        const int32_t dst = any_i32(rng);
        auto copy = decode_relayed_call(encode_copy_kv_block(src, dst));
        REQUIRE(copy.ok());
        CHECK(copy->kind == RelayedCall::Kind::kCopyKvBlock);
        CHECK(copy->src == src);
        CHECK(copy->dst == dst);
    }
}

TEST_CASE("step relay codec: the wire layout is the header's, little-endian") {
    const std::string message = small_forward();
    REQUIRE(message.size() == 33);
    const std::string expected(
        "\x01\x02"          // version 1, forward
        "\x01\x00\x00\x00"  // 1 sequence
        "\x05\x00\x00\x00"  // n_past 5
        "\x01\x00"          // logits last, no hidden
        "\x02\x00\x00\x00"  // 2 tokens
        "\x07\x00\x00\x00\x08\x00\x00\x00"
        "\x01\x00\x00\x00"  // 1 block
        "\x03\x00\x00\x00"
        "\x00",  // no device sampling
        33);
    CHECK(message == expected);
    CHECK(encode_copy_kv_block(1, -2) ==
          std::string("\x01\x03\x01\x00\x00\x00\xfe\xff\xff\xff", 10));
}

TEST_CASE("step relay codec: every truncation of a valid message is refused") {
    std::vector<std::string> messages = {small_forward(), encode_configure_kv_cache({16, 64}),
                                         encode_copy_kv_block(3, 4)};
    for (uint32_t seed = 1; seed <= 20; ++seed) {
        std::mt19937 rng(seed * 977);
        messages.push_back(encode_forward(random_batch(rng).batch));
    }
    for (const std::string& message : messages) {
        REQUIRE(decode_relayed_call(message).ok());
        for (size_t length = 0; length < message.size(); ++length) {
            const std::string why = refusal(std::string_view(message).substr(0, length));
            CHECK_MESSAGE(why.find(" left") != std::string::npos, why);
        }
    }
    CHECK(refusal("") == "relayed call: byte 0: version needs 1 bytes, 0 left");
    CHECK(refusal(small_forward().substr(0, 22)) ==
          "relayed call: byte 12: forward sequence 0 n_tokens 2 needs at least 8 bytes, 6 left");
}

TEST_CASE("step relay codec: malformed messages are refused naming what is wrong") {
    const std::string valid = small_forward();
    SUBCASE("unknown version") {
        std::string m = valid;
        m[0] = 2;
        CHECK(refusal(m) == "relayed call: byte 0: version 2, expected 1");
    }
    SUBCASE("unknown kind") {
        for (const char kind : {'\0', '\x04', '\xff'}) {
            std::string m = valid;
            m[1] = kind;
            CHECK(refusal(m).starts_with("relayed call: byte 1: unknown kind " +
                                         std::to_string(static_cast<uint8_t>(kind))));
        }
    }
    SUBCASE("enums out of range") {
        std::string m = valid;
        m[10] = 3;
        CHECK(refusal(m) == "relayed call: byte 10: forward sequence 0 logits 3 outside [0, 2]");
        m = valid;
        m[11] = 2;
        CHECK(refusal(m) == "relayed call: byte 11: forward sequence 0 hidden 2 is not 0 or 1");
        m = valid;
        m[32] = 7;
        CHECK(refusal(m) ==
              "relayed call: byte 32: forward sequence 0 has_device_sample 7 is not 0 or 1");
    }
    SUBCASE("counts past the end") {
        std::string m = valid;
        put_u32(m, 2, 0xffffffffu);
        CHECK(refusal(m).starts_with(
            "relayed call: byte 2: forward n_sequences 4294967295 needs at least"));
        m = valid;
        put_u32(m, 12, 0x40000000u);
        CHECK(refusal(m) ==
              "relayed call: byte 12: forward sequence 0 n_tokens 1073741824 needs "
              "at least 4294967296 bytes, 17 left");
        m = valid;
        put_u32(m, 24, 2);
        CHECK(refusal(m) ==
              "relayed call: byte 24: forward sequence 0 n_blocks 2 needs at least "
              "8 bytes, 5 left");
        m = valid;
        put_u32(m, 2, 2);  // a second sequence that is not there
        CHECK(refusal(m).starts_with("relayed call: byte 2: forward n_sequences 2 needs at least"));
    }
    SUBCASE("a forward of no sequences") {
        std::string m = valid.substr(0, 6);
        put_u32(m, 2, 0);
        CHECK(refusal(m) == "relayed call: byte 2: forward with 0 sequences");
    }
    SUBCASE("trailing bytes") {
        CHECK(refusal(valid + "x") == "relayed call: byte 33: 1 trailing bytes after a forward");
        CHECK(refusal(encode_copy_kv_block(1, 2) + "ab") ==
              "relayed call: byte 10: 2 trailing bytes after a copy_kv_block");
        CHECK(refusal(encode_configure_kv_cache({16, 4}) + std::string(1, '\0')) ==
              "relayed call: byte 10: 1 trailing bytes after a configure_kv_cache");
    }
}

TEST_CASE("step relay fuzz body over 20,000 random and mutated messages") {
    std::mt19937 rng(20261127);
    std::vector<std::string> seeds = {small_forward(), encode_configure_kv_cache({16, 64}),
                                      encode_copy_kv_block(3, 4)};
    for (int i = 0; i < 40; ++i) {
        seeds.push_back(encode_forward(random_batch(rng).batch));
    }
    for (const std::string& seed : seeds) {
        const std::string problem = fuzz::check_relayed_call_input(seed);
        REQUIRE_MESSAGE(problem.empty(), problem);
    }
    int decoded = 0;
    for (int i = 0; i < 20000; ++i) {
        std::string input;
        if (i % 4 == 0) {
            // Random bytes behind a plausible header, so the body is reached.
            input.resize(rng() % 48);
            for (char& c : input) {
                c = static_cast<char>(rng() % 4 == 0 ? rng() % 3 : rng());
            }
            if (input.size() >= 2 && rng() % 2 == 0) {
                input[0] = 1;
                input[1] = static_cast<char>(1 + rng() % 3);
            }
        } else {
            input = seeds[rng() % seeds.size()];
            const int n_mutations = 1 + static_cast<int>(rng() % 4);
            for (int m = 0; m < n_mutations && !input.empty(); ++m) {
                const size_t at = rng() % input.size();
                switch (rng() % 5) {
                    case 0:
                        input[at] = static_cast<char>(rng());
                        break;
                    case 1:
                        input[at] ^= static_cast<char>(1u << (rng() % 8));
                        break;
                    case 2:
                        input.resize(at);
                        break;
                    case 3:
                        input.insert(at, 1, static_cast<char>(rng() % 3));
                        break;
                    default:
                        if (at + 4 <= input.size()) {
                            put_u32(input, at, rng() % 2 == 0 ? rng() % 64 : rng());
                        }
                        break;
                }
            }
        }
        const std::string problem = fuzz::check_relayed_call_input(input);
        REQUIRE_MESSAGE(problem.empty(), problem << " (input " << i << ")");
        decoded += decode_relayed_call(input).ok() ? 1 : 0;
    }
    // The inputs reach both ends of the decoder.
    CHECK(decoded > 100);
    CHECK(decoded < 20000);
}

}  // namespace sluice::inference
