#include "inference/step_relay.h"

#include <algorithm>
#include <bit>
#include <span>
#include <utility>

#include "common/check.h"
#include "inference/detail/forward_validation.h"

namespace sluice::inference {

namespace {

constexpr uint8_t kWireVersion = 1;

// The smallest encoding of one forward entry: n_past, logits, hidden, n_tokens, n_blocks and
// has_device_sample with empty arrays. Bounds the entry count before anything is allocated.
constexpr size_t kMinSequenceBytes = 4 + 1 + 1 + 4 + 4 + 1;

// Little-endian writers; the wire is little-endian whatever the host is.
class Writer {
public:
    void u8(uint8_t v) { out_.push_back(static_cast<char>(v)); }
    void u32(uint32_t v) {
        for (int i = 0; i < 4; ++i) {
            out_.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
        }
    }
    void u64(uint64_t v) {
        for (int i = 0; i < 8; ++i) {
            out_.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
        }
    }
    void i32(int32_t v) { u32(static_cast<uint32_t>(v)); }
    void f32(float v) { u32(std::bit_cast<uint32_t>(v)); }
    void f64(double v) { u64(std::bit_cast<uint64_t>(v)); }
    void i32s(std::span<const int32_t> values) {
        u32(static_cast<uint32_t>(values.size()));
        for (const int32_t v : values) {
            i32(v);
        }
    }
    std::string take() { return std::move(out_); }

private:
    std::string out_;
};

// Reads a message front to back; every read checks the bytes left, so no input over-reads.
class Reader {
public:
    explicit Reader(std::string_view data) : data_(data) {}

    size_t offset() const { return pos_; }
    size_t remaining() const { return data_.size() - pos_; }

    Status u8(uint8_t* out, std::string_view field) {
        SLUICE_RETURN_IF_ERROR(need(1, field));
        *out = static_cast<uint8_t>(data_[pos_++]);
        return Status::ok_status();
    }
    Status u32(uint32_t* out, std::string_view field) {
        SLUICE_RETURN_IF_ERROR(need(4, field));
        *out = static_cast<uint32_t>(load(4));
        return Status::ok_status();
    }
    Status i32(int32_t* out, std::string_view field) {
        uint32_t raw = 0;
        SLUICE_RETURN_IF_ERROR(u32(&raw, field));
        *out = static_cast<int32_t>(raw);
        return Status::ok_status();
    }
    Status f32(float* out, std::string_view field) {
        uint32_t raw = 0;
        SLUICE_RETURN_IF_ERROR(u32(&raw, field));
        *out = std::bit_cast<float>(raw);
        return Status::ok_status();
    }
    Status f64(double* out, std::string_view field) {
        SLUICE_RETURN_IF_ERROR(need(8, field));
        *out = std::bit_cast<double>(load(8));
        return Status::ok_status();
    }
    // A u32 count of `element_bytes`-byte items, refused when they cannot fit in what is left.
    Status count(uint32_t* out, size_t element_bytes, std::string_view field) {
        const size_t at = pos_;
        SLUICE_RETURN_IF_ERROR(u32(out, field));
        if (*out > remaining() / element_bytes) {
            return error(at, std::string(field) + " " + std::to_string(*out) + " needs at least " +
                                 std::to_string(static_cast<uint64_t>(*out) * element_bytes) +
                                 " bytes, " + std::to_string(remaining()) + " left");
        }
        return Status::ok_status();
    }
    Status i32s(std::vector<int32_t>* out, std::string_view count_field) {
        uint32_t n = 0;
        SLUICE_RETURN_IF_ERROR(count(&n, 4, count_field));
        out->resize(n);
        for (int32_t& v : *out) {
            v = static_cast<int32_t>(static_cast<uint32_t>(load(4)));
        }
        return Status::ok_status();
    }

    static Status error(size_t at, const std::string& what) {
        return invalid_argument("relayed call: byte " + std::to_string(at) + ": " + what);
    }

private:
    Status need(size_t n, std::string_view field) const {
        if (remaining() < n) {
            return error(pos_, std::string(field) + " needs " + std::to_string(n) + " bytes, " +
                                   std::to_string(remaining()) + " left");
        }
        return Status::ok_status();
    }
    // Precondition: `n` bytes remain.
    uint64_t load(size_t n) {
        uint64_t v = 0;
        for (size_t i = 0; i < n; ++i) {
            v |= static_cast<uint64_t>(static_cast<uint8_t>(data_[pos_ + i])) << (8 * i);
        }
        pos_ += n;
        return v;
    }

    std::string_view data_;
    size_t pos_ = 0;
};

uint8_t logits_code(LogitsRows rows) {
    switch (rows) {
        case LogitsRows::kNone:
            return 0;
        case LogitsRows::kLast:
            return 1;
        case LogitsRows::kAll:
            return 2;
    }
    SLUICE_CHECK(false, "unknown LogitsRows");
    return 0;
}

Writer header(RelayedCall::Kind kind) {
    Writer w;
    w.u8(kWireVersion);
    w.u8(static_cast<uint8_t>(kind));
    return w;
}

// One forward entry; `where` names it in errors.
Status decode_sequence(Reader& in, const std::string& where, RelayedCall& call, SequenceStep& seq,
                       std::optional<DeviceSampling>& sampling) {
    SLUICE_RETURN_IF_ERROR(in.i32(&seq.n_past, where + " n_past"));
    uint8_t logits = 0;
    const size_t logits_at = in.offset();
    SLUICE_RETURN_IF_ERROR(in.u8(&logits, where + " logits"));
    if (logits > 2) {
        return Reader::error(logits_at,
                             where + " logits " + std::to_string(logits) + " outside [0, 2]");
    }
    seq.logits = logits == 0   ? LogitsRows::kNone
                 : logits == 1 ? LogitsRows::kLast
                               : LogitsRows::kAll;
    uint8_t hidden = 0;
    const size_t hidden_at = in.offset();
    SLUICE_RETURN_IF_ERROR(in.u8(&hidden, where + " hidden"));
    if (hidden > 1) {
        return Reader::error(hidden_at,
                             where + " hidden " + std::to_string(hidden) + " is not 0 or 1");
    }
    seq.hidden = hidden == 1;
    call.tokens.emplace_back();
    SLUICE_RETURN_IF_ERROR(in.i32s(&call.tokens.back(), where + " n_tokens"));
    call.blocks.emplace_back();
    SLUICE_RETURN_IF_ERROR(in.i32s(&call.blocks.back(), where + " n_blocks"));
    uint8_t has_sample = 0;
    const size_t sample_at = in.offset();
    SLUICE_RETURN_IF_ERROR(in.u8(&has_sample, where + " has_device_sample"));
    if (has_sample > 1) {
        return Reader::error(sample_at, where + " has_device_sample " + std::to_string(has_sample) +
                                            " is not 0 or 1");
    }
    if (has_sample == 1) {
        DeviceSampling ds;
        SLUICE_RETURN_IF_ERROR(in.f32(&ds.temperature, where + " temperature"));
        SLUICE_RETURN_IF_ERROR(in.i32(&ds.top_k, where + " top_k"));
        SLUICE_RETURN_IF_ERROR(in.f32(&ds.top_p, where + " top_p"));
        SLUICE_RETURN_IF_ERROR(in.f32(&ds.min_p, where + " min_p"));
        SLUICE_RETURN_IF_ERROR(in.f64(&ds.u, where + " u"));
        sampling = ds;
    }
    return Status::ok_status();
}

Status decode_forward(Reader& in, RelayedCall& call) {
    uint32_t n_sequences = 0;
    const size_t count_at = in.offset();
    SLUICE_RETURN_IF_ERROR(in.count(&n_sequences, kMinSequenceBytes, "forward n_sequences"));
    if (n_sequences == 0) {
        return Reader::error(count_at, "forward with 0 sequences");
    }
    call.tokens.reserve(n_sequences);
    call.blocks.reserve(n_sequences);
    std::vector<SequenceStep> sequences(n_sequences);
    std::vector<std::optional<DeviceSampling>> sampling(n_sequences);
    for (uint32_t s = 0; s < n_sequences; ++s) {
        SLUICE_RETURN_IF_ERROR(decode_sequence(in, "forward sequence " + std::to_string(s), call,
                                               sequences[s], sampling[s]));
    }
    // The spans are set once all vectors exist: `reserve` above keeps their buffers in place,
    // and moving the RelayedCall moves the buffers with it.
    for (uint32_t s = 0; s < n_sequences; ++s) {
        sequences[s].tokens = call.tokens[s];
        sequences[s].block_table = call.blocks[s];
    }
    call.batch.sequences = std::move(sequences);
    if (std::ranges::any_of(sampling, [](const auto& ds) { return ds.has_value(); })) {
        call.batch.device_sample = std::move(sampling);
    }
    return Status::ok_status();
}

std::string describe(RelayedCall::Kind kind) {
    switch (kind) {
        case RelayedCall::Kind::kConfigureKvCache:
            return "configure_kv_cache";
        case RelayedCall::Kind::kForward:
            return "forward";
        case RelayedCall::Kind::kCopyKvBlock:
            return "copy_kv_block";
    }
    return "call";
}

}  // namespace

std::string encode_configure_kv_cache(const KvCacheSpec& spec) {
    Writer w = header(RelayedCall::Kind::kConfigureKvCache);
    w.i32(spec.block_size);
    w.i32(spec.n_blocks);
    return w.take();
}

std::string encode_copy_kv_block(int32_t src, int32_t dst) {
    Writer w = header(RelayedCall::Kind::kCopyKvBlock);
    w.i32(src);
    w.i32(dst);
    return w.take();
}

std::string encode_forward(const ForwardBatch& batch) {
    Writer w = header(RelayedCall::Kind::kForward);
    w.u32(static_cast<uint32_t>(batch.sequences.size()));
    for (size_t s = 0; s < batch.sequences.size(); ++s) {
        const SequenceStep& seq = batch.sequences[s];
        w.i32(seq.n_past);
        w.u8(logits_code(seq.logits));
        w.u8(seq.hidden ? 1 : 0);
        w.i32s(seq.tokens);
        w.i32s(seq.block_table);
        const DeviceSampling* ds = batch.device_sample_of(s);
        w.u8(ds != nullptr ? 1 : 0);
        if (ds != nullptr) {
            w.f32(ds->temperature);
            w.i32(ds->top_k);
            w.f32(ds->top_p);
            w.f32(ds->min_p);
            w.f64(ds->u);
        }
    }
    return w.take();
}

Result<RelayedCall> decode_relayed_call(std::string_view message) {
    Reader in(message);
    uint8_t version = 0;
    SLUICE_RETURN_IF_ERROR(in.u8(&version, "version"));
    if (version != kWireVersion) {
        return Reader::error(
            0, "version " + std::to_string(version) + ", expected " + std::to_string(kWireVersion));
    }
    uint8_t kind = 0;
    SLUICE_RETURN_IF_ERROR(in.u8(&kind, "kind"));
    RelayedCall call;
    switch (kind) {
        case 1:
            call.kind = RelayedCall::Kind::kConfigureKvCache;
            SLUICE_RETURN_IF_ERROR(in.i32(&call.spec.block_size, "configure_kv_cache block_size"));
            SLUICE_RETURN_IF_ERROR(in.i32(&call.spec.n_blocks, "configure_kv_cache n_blocks"));
            break;
        case 2:
            call.kind = RelayedCall::Kind::kForward;
            SLUICE_RETURN_IF_ERROR(decode_forward(in, call));
            break;
        case 3:
            call.kind = RelayedCall::Kind::kCopyKvBlock;
            SLUICE_RETURN_IF_ERROR(in.i32(&call.src, "copy_kv_block src"));
            SLUICE_RETURN_IF_ERROR(in.i32(&call.dst, "copy_kv_block dst"));
            break;
        default:
            return Reader::error(1, "unknown kind " + std::to_string(kind) +
                                        ", expected 1 (configure_kv_cache), 2 (forward) or 3 "
                                        "(copy_kv_block)");
    }
    if (in.remaining() != 0) {
        return Reader::error(in.offset(), std::to_string(in.remaining()) +
                                              " trailing bytes after a " + describe(call.kind));
    }
    return call;
}

namespace {

class LeaderBackend final : public Backend {
public:
    LeaderBackend(std::unique_ptr<Backend> local, std::shared_ptr<StepChannel> channel,
                  int64_t max_step_tokens)
        : local_(std::move(local)),
          channel_(std::move(channel)),
          max_step_tokens_(max_step_tokens) {}

    std::string name() const override {
        return local_->name() + " (leading " + std::to_string(channel_->n_nodes()) + " nodes)";
    }
    const ModelConfig& config() const override { return local_->config(); }
    BackendMemory memory() const override { return local_->memory(); }
    int64_t active_weight_bytes() const override { return local_->active_weight_bytes(); }
    KvCacheSpec kv_cache_spec() const override { return local_->kv_cache_spec(); }
    bool samples_on_device() const override { return local_->samples_on_device(); }
    int64_t device_sample_capacity() const override { return local_->device_sample_capacity(); }

    Status configure_kv_cache(const KvCacheSpec& spec) override {
        SLUICE_RETURN_IF_ERROR(health());
        if (spec.block_size <= 0 || spec.n_blocks <= 0) {
            return invalid_argument("configure_kv_cache: block_size " +
                                    std::to_string(spec.block_size) + " and n_blocks " +
                                    std::to_string(spec.n_blocks) + " must be positive");
        }
        SLUICE_RETURN_IF_ERROR(channel_->broadcast_step(encode_configure_kv_cache(spec)));
        return local_->configure_kv_cache(spec);
    }

    Result<ForwardOutput> forward(const ForwardBatch& batch) override {
        SLUICE_RETURN_IF_ERROR(health());
        SLUICE_RETURN_IF_ERROR(check_forward(batch));
        SLUICE_RETURN_IF_ERROR(channel_->broadcast_step(encode_forward(batch)));
        return local_->forward(batch);
    }

    Status copy_kv_block(int32_t src, int32_t dst) override {
        SLUICE_RETURN_IF_ERROR(health());
        SLUICE_RETURN_IF_ERROR(detail::validate_kv_block_copy(src, dst, local_->kv_cache_spec()));
        SLUICE_RETURN_IF_ERROR(channel_->broadcast_step(encode_copy_kv_block(src, dst)));
        return local_->copy_kv_block(src, dst);
    }

    Status health() const override {
        SLUICE_RETURN_IF_ERROR(local_->health());
        std::string reason = channel_->abort_reason();
        if (!reason.empty()) {
            return Status(StatusCode::kAborted, std::move(reason));
        }
        return Status::ok_status();
    }

private:
    // The local backend's own checks, made here so that a step it would refuse is refused on
    // node 0 alone: once relayed, a follower refusing it would abort the whole group.
    Status check_forward(const ForwardBatch& batch) const {
        SLUICE_RETURN_IF_ERROR(detail::validate_forward_batch(
            batch, local_->config(), local_->kv_cache_spec(), local_->samples_on_device()));
        const int64_t n_tokens = detail::batch_token_count(batch);
        if (max_step_tokens_ > 0 && n_tokens > max_step_tokens_) {
            return invalid_argument("forward: " + std::to_string(n_tokens) +
                                    " new tokens in one step, the backend holds " +
                                    std::to_string(max_step_tokens_));
        }
        const auto n_sampled = std::ranges::count_if(
            batch.device_sample, [](const auto& sampling) { return sampling.has_value(); });
        if (n_sampled > local_->device_sample_capacity()) {
            return invalid_argument("forward: " + std::to_string(n_sampled) +
                                    " entries sampled on the device in one step, the backend "
                                    "samples at most " +
                                    std::to_string(local_->device_sample_capacity()));
        }
        return Status::ok_status();
    }

    std::unique_ptr<Backend> local_;
    std::shared_ptr<StepChannel> channel_;
    const int64_t max_step_tokens_;
};

// Runs one decoded call on `backend`; the forward's output stays on this node (node 0 returns
// its own).
Status run_call(Backend& backend, const RelayedCall& call) {
    switch (call.kind) {
        case RelayedCall::Kind::kConfigureKvCache:
            return backend.configure_kv_cache(call.spec);
        case RelayedCall::Kind::kForward:
            return backend.forward(call.batch).status();
        case RelayedCall::Kind::kCopyKvBlock:
            return backend.copy_kv_block(call.src, call.dst);
    }
    return internal_error("relayed call of an unknown kind");
}

}  // namespace

std::unique_ptr<Backend> make_leader_backend(std::unique_ptr<Backend> local,
                                             std::shared_ptr<StepChannel> channel,
                                             int64_t max_step_tokens) {
    SLUICE_CHECK(local != nullptr && channel != nullptr,
                 "leader backend needs a backend and a channel");
    SLUICE_CHECK(channel->node() == 0, "only node 0 leads");
    return std::make_unique<LeaderBackend>(std::move(local), std::move(channel), max_step_tokens);
}

StepFollower::StepFollower(std::unique_ptr<Backend> local, std::shared_ptr<StepChannel> channel)
    : local_(std::move(local)), channel_(std::move(channel)) {
    SLUICE_CHECK(local_ != nullptr && channel_ != nullptr,
                 "step follower needs a backend and a channel");
}

StepFollower::~StepFollower() = default;

Status StepFollower::run() {
    for (;;) {
        Result<std::string> message = channel_->next_step();
        if (!message.ok()) {
            if (message.status().code() == StatusCode::kCancelled) {
                return Status::ok_status();
            }
            return message.status();
        }
        std::string failure;
        Result<RelayedCall> call = decode_relayed_call(*message);
        if (!call.ok()) {
            failure = "relayed call " + std::to_string(calls_.load() + 1) +
                      " did not decode: " + call.status().message();
        } else if (Status ran = run_call(*local_, *call); !ran.ok()) {
            failure = "relayed " + describe(call->kind) + " (call " +
                      std::to_string(calls_.load() + 1) + ") failed: " + ran.to_string();
        }
        if (!failure.empty()) {
            // The group's abort logs the reason once, on every node.
            channel_->abort(failure);
            std::string reason = channel_->abort_reason();
            return Status(StatusCode::kAborted, reason.empty() ? failure : std::move(reason));
        }
        calls_.fetch_add(1);
    }
}

void StepFollower::stop() { channel_->stop_following(); }

int64_t StepFollower::calls() const { return calls_.load(); }

}  // namespace sluice::inference
