#pragma once
// PushSource: documents pushed over HTTP (POST /api/sources/{name}/events), kept in a durable
// log and read back by the sync engine through the Source interface.
//
// The log is a SQLite file (WAL, synchronous=FULL: an accepted request is on disk before it is
// answered). ingest() validates the whole request first — nothing of an invalid request is
// stored — then appends its events and remembers the answer under the idempotency key in the
// same transaction. A repeated key within the retention window gets the first answer back and
// appends nothing; the same key with a different body is refused.
//
// Checkpoints: "" (everything) or {"v":1,"seq":S}. Offsets: "seq:S". acknowledge() deletes
// events up to S; polling from an older checkpoint is then kFailedPrecondition.
//
// Thread safety: thread-safe. ingest() is called from HTTP worker threads while one sync worker
// polls; a mutex serialises use of the one connection.

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>

#include <nlohmann/json.hpp>

#include "common/result.h"
#include "connectors/source.h"

namespace sluice::connectors {

struct PushSourceConfig {
    std::string path;  // the log file, created when missing
    std::chrono::seconds idempotency_window{24 * 3600};
    std::size_t max_events_per_request = 1000;
};

// {"idempotency_window_s", "max_events_per_request"}; the log path comes from the state folder.
Result<PushSourceConfig> push_config_from_json(const nlohmann::json& value);
nlohmann::json to_json(const PushSourceConfig& config);

struct IngestResult {
    nlohmann::json response;  // {"accepted": n, "first_seq": a, "last_seq": b}
    bool replayed = false;    // the answer stored under the idempotency key
};

namespace detail {
struct PushSourceState;
}

class PushSource final : public Source {
public:
    // Errors: kIoError when the log cannot be created or opened.
    static Result<std::unique_ptr<PushSource>> open(PushSourceConfig config);
    ~PushSource() override;

    // `body`: {"events": [{"key", "op", "document": {"text", "metadata", "acl"}}]}.
    // `idempotency_key`: 1–255 printable ASCII characters.
    // Errors: kInvalidArgument naming the bad field ("events[2].document.text: ..."), or the
    // bad idempotency key; kPayloadTooLarge past max_events_per_request; kAlreadyExists when
    // the key was used with a different body; kUnavailable/kIoError from the log.
    Result<IngestResult> ingest(std::string_view idempotency_key, const nlohmann::json& body);

    std::string_view kind() const override { return "http"; }
    Result<Batch> poll(std::string_view checkpoint, const PollOptions& options) override;
    Status acknowledge(std::string_view checkpoint) override;
    Result<bool> wait(std::chrono::milliseconds timeout) override;
    void wake() override;
    Result<nlohmann::json> status() override;

    explicit PushSource(std::unique_ptr<detail::PushSourceState> state);

private:
    std::unique_ptr<detail::PushSourceState> state_;
    std::mutex wake_mutex_;
    std::condition_variable wake_cv_;
    std::uint64_t wake_generation_ = 0;  // guarded by wake_mutex_; bumped by ingest and wake
};

}  // namespace sluice::connectors
