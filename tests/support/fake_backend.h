#pragma once
// A Backend for scheduler and engine tests: no model, but a real paged KV cache whose contents
// decide the output. Each slot stores the token written at its position; the logits of a row are
// a function of every token the sequence's block table holds at positions 0..p, read back from
// the slots. A scheduler that shares, copies, frees or reuses blocks wrongly therefore changes
// the output, and a test comparing against sequences run alone catches it.
//
// Also records per step how many sequences and tokens it saw, so that tests can look at
// batching. Thread safety: owned by one thread, like every backend.

#include <algorithm>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "inference/backend.h"

namespace sluice::inference::testing {

class FakeBackend final : public Backend {
public:
    static constexpr int64_t kVocab = 64;
    static constexpr int64_t kEmbd = 8;

    FakeBackend() {
        config_.n_vocab = kVocab;
        config_.d_model = kEmbd;
        config_.n_head = 1;
        config_.n_head_kv = 1;
        config_.n_layer = 1;
        config_.max_seq_len = 4096;
    }

    std::string name() const override { return "fake"; }
    const ModelConfig& config() const override { return config_; }
    BackendMemory memory() const override { return {0, 0}; }
    int64_t active_weight_bytes() const override { return 0; }

    Status configure_kv_cache(const KvCacheSpec& spec) override {
        if (spec.n_blocks <= 0 || spec.block_size <= 0) {
            return invalid_argument("fake: bad kv cache spec");
        }
        spec_ = spec;
        slots_.assign(static_cast<size_t>(spec.n_blocks * spec.block_size), -1);
        return Status::ok_status();
    }
    KvCacheSpec kv_cache_spec() const override { return spec_; }

    // Every forward after `n` successful ones fails with `status`, and health() reports it from
    // then on: a backend that stopped for good (a failed rank). Set before handing it over.
    void fail_after(int64_t n, Status status) {
        fail_after_ = n;
        failure_ = std::move(status);
    }
    Status health() const override { return failed_ ? failure_ : Status::ok_status(); }

    Result<ForwardOutput> forward(const ForwardBatch& batch) override {
        if (failed_ || (fail_after_ >= 0 && static_cast<int64_t>(steps.size()) >= fail_after_)) {
            failed_ = true;
            return failure_;
        }
        if (batch.sequences.empty()) {
            return invalid_argument("fake: empty batch");
        }
        std::set<int32_t> written;
        int64_t n_tokens = 0;
        for (const SequenceStep& seq : batch.sequences) {
            const int64_t end = seq.n_past + static_cast<int64_t>(seq.tokens.size());
            const int64_t needed = (end + spec_.block_size - 1) / spec_.block_size;
            if (seq.tokens.empty() || static_cast<int64_t>(seq.block_table.size()) < needed) {
                return invalid_argument("fake: block table too short");
            }
            for (int64_t b = seq.n_past / spec_.block_size; b < needed; ++b) {
                const int32_t block = seq.block_table[static_cast<size_t>(b)];
                if (block < 0 || block >= spec_.n_blocks) {
                    return invalid_argument("fake: block out of range");
                }
                if (!written.insert(block).second) {
                    return invalid_argument("fake: block written twice in one step");
                }
            }
            n_tokens += static_cast<int64_t>(seq.tokens.size());
        }
        steps.push_back({static_cast<int64_t>(batch.sequences.size()), n_tokens});

        ForwardOutput out;
        out.n_vocab = kVocab;
        out.n_embd = kEmbd;
        for (const SequenceStep& seq : batch.sequences) {
            for (size_t i = 0; i < seq.tokens.size(); ++i) {
                slot(seq.block_table, seq.n_past + static_cast<int64_t>(i)) = seq.tokens[i];
            }
        }
        for (const SequenceStep& seq : batch.sequences) {
            const auto n_new = static_cast<int64_t>(seq.tokens.size());
            out.first_row.push_back(static_cast<int64_t>(out.logits.size()) / kVocab);
            const int64_t first = seq.logits == LogitsRows::kAll ? 0 : n_new - 1;
            const int64_t count = seq.logits == LogitsRows::kNone ? 0 : n_new - first;
            for (int64_t r = first; r < first + count; ++r) {
                const std::vector<float> row =
                    logits_row(prefix_hash(seq.block_table, seq.n_past + r));
                out.logits.insert(out.logits.end(), row.begin(), row.end());
            }
            out.n_rows.push_back(count);
            out.hidden_first_row.push_back(static_cast<int64_t>(out.hidden.size()) / kEmbd);
            out.hidden_n_rows.push_back(seq.hidden ? n_new : 0);
            if (seq.hidden) {
                for (int64_t r = 0; r < n_new; ++r) {
                    auto row = hidden_state(prefix_hash(seq.block_table, seq.n_past + r));
                    out.hidden.insert(out.hidden.end(), row.begin(), row.end());
                }
            }
        }
        return out;
    }

    // Every block copy fails with `status` from now on (a backend whose group aborted).
    void fail_copies(Status status) { copy_failure_ = std::move(status); }

    Status copy_kv_block(int32_t src, int32_t dst) override {
        if (!copy_failure_.ok()) {
            return copy_failure_;
        }
        if (src < 0 || dst < 0 || src >= spec_.n_blocks || dst >= spec_.n_blocks) {
            return invalid_argument("fake: copy out of range");
        }
        std::copy_n(slots_.begin() + src * spec_.block_size, spec_.block_size,
                    slots_.begin() + dst * spec_.block_size);
        ++copies;
        return Status::ok_status();
    }

    // What the fake computes for a whole token sequence, for references.
    static uint64_t hash_tokens(const std::vector<int32_t>& tokens, size_t n) {
        uint64_t h = 0x12345;
        for (size_t i = 0; i < n; ++i) {
            h = mix(h ^ static_cast<uint64_t>(tokens[i] + 1));
        }
        return h;
    }
    // The logits row of a prefix whose hash_tokens is `h`.
    static std::vector<float> logits_row(uint64_t h) {
        std::vector<float> row;
        for (int64_t v = 0; v < kVocab; ++v) {
            // A clear winner, a runner-up, and a spread for sampled tests.
            const uint64_t hv = mix(h ^ static_cast<uint64_t>(v));
            row.push_back(static_cast<float>(hv % 1000) / 1000.0f);
        }
        row[h % kVocab] += 8.0f;
        return row;
    }
    static std::vector<float> hidden_state(uint64_t h) {
        std::vector<float> row;
        for (int64_t j = 0; j < kEmbd; ++j) {
            row.push_back(static_cast<float>(mix(h + static_cast<uint64_t>(j)) % 2000) / 1000.0f -
                          1.0f);
        }
        return row;
    }

    struct StepRecord {
        int64_t sequences = 0;
        int64_t tokens = 0;
    };
    std::vector<StepRecord> steps;
    int64_t copies = 0;

private:
    int64_t fail_after_ = -1;
    Status failure_;
    Status copy_failure_;
    bool failed_ = false;
    static uint64_t mix(uint64_t x) {
        x += 0x9e3779b97f4a7c15ULL;
        x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
        x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
        return x ^ (x >> 31);
    }
    int32_t& slot(std::span<const int32_t> table, int64_t position) {
        const int32_t block = table[static_cast<size_t>(position / spec_.block_size)];
        return slots_[static_cast<size_t>(block * spec_.block_size +
                                          position % spec_.block_size)];
    }
    // The hash of the tokens at positions 0..p as the cache holds them.
    uint64_t prefix_hash(std::span<const int32_t> table, int64_t p) {
        uint64_t h = 0x12345;
        for (int64_t q = 0; q <= p; ++q) {
            h = mix(h ^ static_cast<uint64_t>(slot(table, q) + 1));
        }
        return h;
    }

    ModelConfig config_;
    KvCacheSpec spec_;
    std::vector<int32_t> slots_;  // [n_blocks * block_size] token at each position, -1 unset
};

}  // namespace sluice::inference::testing
