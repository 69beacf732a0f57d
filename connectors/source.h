#pragma once
// connectors::Source — a feed of change events from one source (a directory of files, SQLite
// tables, PostgreSQL tables through logical replication, an HTTP push log).
//
// The contract the sync engine relies on:
//
//   checkpoint = stored checkpoint, or "" the first time
//   loop:
//     batch = source.poll(checkpoint, options)
//     apply batch.events, and store batch.checkpoint in the same atomic write
//     source.acknowledge(batch.checkpoint)        // after the write is durable
//     checkpoint = batch.checkpoint
//     if batch.caught_up: source.wait(timeout)
//
// - A checkpoint is an opaque, printable string (ASCII, no newlines) that names a position in
//   the source. "" is the beginning: an initial snapshot of everything, then changes.
// - poll() is deterministic and free of side effects on the source's position: polling again
//   from the same checkpoint re-delivers the same events (keys, ops, offsets) in the same order,
//   as long as the source itself has not changed meanwhile; an upsert carries the document as it
//   is when read, so a re-delivered or late upsert converges on the source's current state.
//   Exactly-once application is the consumer's commit of (events, checkpoint) in one write.
// - acknowledge() tells the source that everything up to the checkpoint is durably applied. It
//   is where a source may release what it kept for redelivery: the PostgreSQL slot's confirmed
//   LSN, SQLite change rows, HTTP push log entries. Polling from a checkpoint older than an
//   acknowledged one may then fail with kFailedPrecondition (the consumer must resnapshot).
// - Errors: a poll that fails returns a Status and delivers nothing; the caller retries from the
//   same checkpoint (kUnavailable: connection lost, retry after a pause; kFailedPrecondition:
//   the checkpoint can no longer be served; kInvalidArgument: the checkpoint is malformed).
//   Problems with single documents are ErrorRecords inside a successful batch.
// - Credentials are never logged nor put in statuses, checkpoints or events.
//
// Thread safety: a Source is owned by one thread (the sync worker for that source). wake() is
// the one method that may be called from any thread.

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.h"
#include "connectors/change_event.h"

namespace sluice::connectors {

// What a source does with a document it cannot read.
enum class ErrorPolicy {
    kSkip,   // deliver an ErrorRecord and continue past it
    kPause,  // deliver an ErrorRecord and stop the batch before it; the checkpoint does not move
             // past it, so the next poll retries it (after someone fixes the source)
};

std::string_view error_policy_name(ErrorPolicy policy);
Result<ErrorPolicy> parse_error_policy(std::string_view name);
// A source configuration's "on_error" value: "skip" or "pause", errors prefixed "on_error".
Result<ErrorPolicy> error_policy_from_json(const nlohmann::json& value);

struct PollOptions {
    std::size_t max_events = 1000;  // a batch holds at most this many events (at least 1)
};

struct Batch {
    std::vector<ChangeEvent> events;
    std::vector<ErrorRecord> errors;
    std::string checkpoint;  // the position after this batch; commit it with the events
    bool caught_up = false;  // nothing more was available when the batch was cut
    bool paused = false;     // kPause policy: stopped at the first ErrorRecord
};

class Source {
public:
    virtual ~Source() = default;

    // The kind of source: "file", "sqlite", "postgres", "http".
    virtual std::string_view kind() const = 0;

    // Reads the events after `checkpoint`. See the contract above.
    virtual Result<Batch> poll(std::string_view checkpoint, const PollOptions& options) = 0;

    // Everything up to `checkpoint` (a value returned by poll) is durably applied.
    // Errors: kInvalidArgument for a malformed checkpoint; kUnavailable when the source cannot
    // be reached (the acknowledgement is kept and sent again on the next poll where it can).
    virtual Status acknowledge(std::string_view checkpoint) = 0;

    // Blocks until the source may have new events (a file changed, a commit arrived), until
    // `timeout` passes, or until wake() is called. Returns true when woken by a sign of change.
    // A false return is not a promise that nothing changed: poll is the truth. A connection
    // that breaks while waiting is not an error of wait(): it returns true and the next poll
    // reports (or repairs) it.
    virtual Result<bool> wait(std::chrono::milliseconds timeout) = 0;

    // Makes a wait() in progress return early. Thread-safe.
    virtual void wake() = 0;

    // What an operator wants to see: position, lag, pending changes. Never credentials.
    virtual Result<nlohmann::json> status() = 0;
};

}  // namespace sluice::connectors
