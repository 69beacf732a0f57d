// Parity of the CUDA row kernels, the fused QKV clamp + RoPE + KV write, and paged attention with
// their CPU references (cpu/ops.h, cpu/attention.h), on small shapes and DBRX's own (d_model
// 6144, 48 heads, 8 KV heads, head_dim 128).
#include <doctest/doctest.h>

#include <algorithm>

#include "gpu_test_support.h"
#include "inference/cpu/attention.h"
#include "inference/cpu/ops.h"
#include "inference/cuda/attention.cuh"
#include "inference/cuda/qkv_rope.cuh"
#include "inference/cuda/rows.cuh"

namespace sluice::inference {
namespace {

using testing::DeviceVec;
using testing::random_floats;
using testing::relative_error;

struct Heads {
    int64_t n_head;
    int64_t n_head_kv;
    int64_t head_dim;
};
constexpr Heads kSmallHeads{8, 2, 8};
constexpr Heads kDbrxHeads{48, 8, 128};

}  // namespace

TEST_CASE("cuda layer_norm equals the cpu layer_norm, all rows and chosen rows") {
    for (const auto& [n, d] : {std::pair<int64_t, int64_t>{1, 64}, {7, 6144}, {3, 100}}) {
        const auto x = random_floats(static_cast<size_t>(n * d), 1, 3.0f);
        const auto w = random_floats(static_cast<size_t>(d), 2);
        std::vector<float> ref(x.size());
        cpu::layer_norm(x.data(), w.data(), n, d, 1e-5f, ref.data());
        DeviceVec<float> dx(x), dw(w), dout(x.size());
        REQUIRE(
            cuda::layer_norm(dx.get(), nullptr, dw.get(), n, d, 1e-5f, dout.get(), nullptr).ok());
        INFO("shape " << n << " x " << d);
        CHECK(relative_error(dout.host(), ref) <= 1e-5);

        // Rows in reverse order, into a compact output.
        std::vector<int32_t> rows(static_cast<size_t>(n));
        for (int64_t i = 0; i < n; ++i) {
            rows[static_cast<size_t>(i)] = static_cast<int32_t>(n - 1 - i);
        }
        DeviceVec<int32_t> drows(rows);
        DeviceVec<float> dsel(x.size());
        REQUIRE(cuda::layer_norm(dx.get(), drows.get(), dw.get(), n, d, 1e-5f, dsel.get(), nullptr)
                    .ok());
        const auto sel = dsel.host();
        for (int64_t i = 0; i < n; ++i) {
            const std::vector<float> got(sel.begin() + i * d, sel.begin() + (i + 1) * d);
            const std::vector<float> want(ref.begin() + (n - 1 - i) * d, ref.begin() + (n - i) * d);
            CHECK(relative_error(got, want) <= 1e-5);
        }
    }
}

TEST_CASE("cuda embed_tokens reads f32 and bf16 tables exactly") {
    const int64_t vocab = 50;
    const int64_t d = 6144;
    const auto table = testing::random_bf16_exact(static_cast<size_t>(vocab * d), 3);
    const std::vector<int32_t> tokens{7, 0, 49, 7};
    DeviceVec<float> f32(table);
    DeviceVec<uint16_t> bf16(testing::to_bf16(table));
    DeviceVec<int32_t> dtokens(tokens);
    for (const auto type : {cuda::DeviceDType::kF32, cuda::DeviceDType::kBF16}) {
        DeviceVec<float> out(tokens.size() * d);
        const void* src =
            type == cuda::DeviceDType::kF32 ? static_cast<const void*>(f32.get()) : bf16.get();
        REQUIRE(cuda::embed_tokens(src, type, dtokens.get(), 4, d, out.get(), nullptr).ok());
        const auto got = out.host();
        for (size_t t = 0; t < tokens.size(); ++t) {
            CHECK(std::equal(got.begin() + static_cast<int64_t>(t) * d,
                             got.begin() + static_cast<int64_t>(t + 1) * d,
                             table.begin() + tokens[t] * d));
        }
    }
}

namespace {

void check_qkv_rope(const Heads& heads, bool clip) {
    const int64_t hd = heads.head_dim;
    const int64_t d = heads.n_head * hd;
    const int64_t n_kv = heads.n_head_kv * hd;
    const int64_t n_qkv = d + 2 * n_kv;
    const int32_t block_size = 16;
    const int32_t n_blocks = 8;
    const std::vector<int32_t> positions{20, 21, 22, 1000};
    const std::vector<int32_t> token_seq{0, 0, 0, 1};
    const std::vector<int32_t> table_offset{0, 3};
    // Sequence 0's table [5, 2, 7]; sequence 1's block 62 of 63 is 4 (position 1000 = 62 * 16 + 8).
    std::vector<int32_t> tables{5, 2, 7};
    for (int i = 0; i < 63; ++i) {
        tables.push_back(i == 62 ? 4 : 0);
    }
    const auto n_tokens = static_cast<int64_t>(positions.size());
    auto qkv = random_floats(static_cast<size_t>(n_tokens * n_qkv), 5, 12.0f);
    const float clip_value = 8.0f;
    const double theta = 500000.0;

    // CPU reference, as DbrxModel::attention does it.
    std::vector<float> ref = qkv;
    cpu::RopeTable rope;
    cpu::rope_table(positions, hd, theta, &rope);
    for (int64_t t = 0; t < n_tokens; ++t) {
        float* row = ref.data() + t * n_qkv;
        if (clip) {
            for (int64_t j = 0; j < n_qkv; ++j) {
                row[j] = std::clamp(row[j], -clip_value, clip_value);
            }
        }
        for (int64_t h = 0; h < heads.n_head + heads.n_head_kv; ++h) {
            cpu::rope_apply(row + h * hd, rope, t);
        }
    }
    std::vector<float> inv_freq(static_cast<size_t>(hd / 2));
    for (int64_t i = 0; i < hd / 2; ++i) {
        const auto exponent = static_cast<float>(2 * i) / static_cast<float>(hd);
        inv_freq[static_cast<size_t>(i)] =
            1.0f / static_cast<float>(std::pow(static_cast<float>(theta), exponent));
    }

    DeviceVec<float> dqkv(qkv), dfreq(inv_freq);
    DeviceVec<int32_t> dpos(positions), dseq(token_seq), doff(table_offset), dtables(tables);
    const size_t cache_size = static_cast<size_t>(n_blocks * block_size * n_kv);
    DeviceVec<float> dk(cache_size), dv(cache_size);
    cuda::QkvRopeArgs args;
    args.qkv = dqkv.get();
    args.positions = dpos.get();
    args.token_seq = dseq.get();
    args.table_offset = doff.get();
    args.block_tables = dtables.get();
    args.inv_freq = dfreq.get();
    args.k_cache = dk.get();
    args.v_cache = dv.get();
    args.n_tokens = n_tokens;
    args.n_head = heads.n_head;
    args.n_head_kv = heads.n_head_kv;
    args.head_dim = hd;
    args.block_size = block_size;
    args.clip = clip;
    args.clip_value = clip_value;
    REQUIRE(cuda::qkv_clamp_rope_kv_write(args, nullptr).ok());
    const auto got = dqkv.host();
    INFO("heads " << heads.n_head << "/" << heads.n_head_kv << " x " << hd << ", clip " << clip);
    CHECK(relative_error(got, ref) <= 1e-5);
    const auto k = dk.host();
    const auto v = dv.host();
    for (int64_t t = 0; t < n_tokens; ++t) {
        const int32_t pos = positions[static_cast<size_t>(t)];
        const int32_t block = tables[static_cast<size_t>(
            table_offset[static_cast<size_t>(token_seq[static_cast<size_t>(t)])] +
            pos / block_size)];
        const int64_t slot = (int64_t{block} * block_size + pos % block_size) * n_kv;
        CHECK(std::equal(k.begin() + slot, k.begin() + slot + n_kv, got.begin() + t * n_qkv + d));
        CHECK(std::equal(v.begin() + slot, v.begin() + slot + n_kv,
                         got.begin() + t * n_qkv + d + n_kv));
    }
}

}  // namespace

TEST_CASE("cuda qkv clamp + rope + kv write equals the cpu steps") {
    check_qkv_rope(kSmallHeads, true);
    check_qkv_rope(kSmallHeads, false);
    check_qkv_rope({8, 4, 16}, true);
    check_qkv_rope(kDbrxHeads, true);
}

namespace {

struct AttnSeq {
    int32_t n_past;
    int32_t n_new;
};

void check_attention(const Heads& heads, int32_t block_size, const std::vector<AttnSeq>& seqs) {
    const int64_t hd = heads.head_dim;
    const int64_t d = heads.n_head * hd;
    const int64_t n_kv = heads.n_head_kv * hd;
    const int64_t n_qkv = d + 2 * n_kv;
    // Disjoint block tables, one per sequence, in reverse block order.
    std::vector<std::vector<int32_t>> tables;
    int32_t n_blocks = 0;
    for (const AttnSeq& s : seqs) {
        n_blocks += (s.n_past + s.n_new + block_size - 1) / block_size;
    }
    for (size_t s = 0, next = 0; s < seqs.size(); ++s) {
        std::vector<int32_t> table;
        const int32_t need = (seqs[s].n_past + seqs[s].n_new + block_size - 1) / block_size;
        for (int32_t b = 0; b < need; ++b, ++next) {
            table.push_back(n_blocks - 1 - static_cast<int32_t>(next));  // reversed: not in order
        }
        tables.push_back(table);
    }
    cpu::KvCacheStorage cache;
    REQUIRE(cache.configure({block_size, n_blocks}, 1, n_kv).ok());
    const size_t cache_size = static_cast<size_t>(n_blocks * block_size * n_kv);
    const auto k_values = random_floats(cache_size, 11, 2.0f);
    const auto v_values = random_floats(cache_size, 12, 2.0f);
    std::copy(k_values.begin(), k_values.end(), cache.k(0, 0, 0));
    std::copy(v_values.begin(), v_values.end(), cache.v(0, 0, 0));

    std::vector<int32_t> positions, token_seq, table_offset, flat;
    for (size_t s = 0; s < seqs.size(); ++s) {
        table_offset.push_back(static_cast<int32_t>(flat.size()));
        flat.insert(flat.end(), tables[s].begin(), tables[s].end());
        for (int32_t i = 0; i < seqs[s].n_new; ++i) {
            positions.push_back(seqs[s].n_past + i);
            token_seq.push_back(static_cast<int32_t>(s));
        }
    }
    const auto n_tokens = static_cast<int64_t>(positions.size());
    const auto qkv = random_floats(static_cast<size_t>(n_tokens * n_qkv), 13, 2.0f);

    std::vector<float> ref(static_cast<size_t>(n_tokens * d));
    std::vector<float> scores(4096);
    int64_t first = 0;
    for (size_t s = 0; s < seqs.size(); ++s) {
        for (int64_t h = 0; h < heads.n_head; ++h) {
            cpu::AttentionHead args{0,
                                    h,
                                    h / (heads.n_head / heads.n_head_kv),
                                    hd,
                                    seqs[s].n_past,
                                    seqs[s].n_new,
                                    tables[s]};
            cpu::attend_head(cache, args, qkv.data() + first * n_qkv, n_qkv, ref.data() + first * d,
                             d, scores.data());
        }
        first += seqs[s].n_new;
    }

    DeviceVec<float> dqkv(qkv), dk(k_values), dv(v_values), dout(ref.size());
    DeviceVec<int32_t> dpos(positions), dseq(token_seq), doff(table_offset), dtables(flat);
    cuda::AttentionArgs args;
    args.qkv = dqkv.get();
    args.k_cache = dk.get();
    args.v_cache = dv.get();
    args.positions = dpos.get();
    args.token_seq = dseq.get();
    args.table_offset = doff.get();
    args.block_tables = dtables.get();
    args.out = dout.get();
    args.n_tokens = n_tokens;
    args.n_head = heads.n_head;
    args.n_head_kv = heads.n_head_kv;
    args.head_dim = hd;
    args.block_size = block_size;
    REQUIRE(cuda::paged_attention(args, nullptr).ok());
    INFO("heads " << heads.n_head << "/" << heads.n_head_kv << " x " << hd << ", block "
                  << block_size);
    CHECK(relative_error(dout.host(), ref) <= 1e-5);
}

}  // namespace

TEST_CASE("cuda paged attention equals attend_head for prefill, decode and mixed batches") {
    // A prefill from 0, a chunk continuing a prefix, and decode steps, in one batch.
    const std::vector<AttnSeq> mixed{{0, 5}, {9, 3}, {30, 1}, {64, 1}};
    check_attention(kSmallHeads, 4, mixed);
    check_attention({8, 4, 16}, 16, mixed);
    check_attention({4, 4, 64}, 3, {{0, 40}});
    check_attention(kDbrxHeads, 16, mixed);
    check_attention(kDbrxHeads, 16, {{0, 33}});
}

TEST_CASE("cuda paged attention refuses a head_dim it cannot hold") {
    cuda::AttentionArgs args;
    args.n_tokens = 1;
    args.n_head = 2;
    args.n_head_kv = 1;
    args.head_dim = 512;
    args.block_size = 16;
    CHECK(cuda::paged_attention(args, nullptr).code() == StatusCode::kInvalidArgument);
}

}  // namespace sluice::inference
