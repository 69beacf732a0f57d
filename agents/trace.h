#pragma once
// Traces: what one answer or agent run did, as a tree of spans (agent, llm, retriever, tool,
// chain), each with its inputs, outputs, timing, token counts and error.
//
//   Trace trace(ctx.principal, ctx.request_id);
//   {
//       SpanScope span(trace, SpanKind::kRetriever, "retrieve", root, {{"query", q}});
//       ... span.set_outputs(...); span.fail("...") on error
//   }   // ends the span
//   store.save(trace.record());
//
// Ids follow OpenTelemetry: a trace id is 32 hex digits, a span id 16. TraceStore keeps finished
// traces in catalog.db (tables agent_traces and agent_spans, one transaction per trace) and
// serves them back as JSON or as OTLP/JSON (ExportTraceServiceRequest).
//
// Thread safety: Trace is thread-safe (parallel tool calls record into one trace); SpanScope is
// owned by one thread; TraceStore is thread-safe.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.h"

namespace sluice::agents {

enum class SpanKind { kAgent, kLlm, kRetriever, kTool, kChain };
std::string_view span_kind_name(SpanKind kind);  // "agent", "llm", "retriever", "tool", "chain"
Result<SpanKind> parse_span_kind(std::string_view text);

struct Span {
    std::string span_id;    // 16 hex digits
    std::string parent_id;  // "" for a root span
    SpanKind kind = SpanKind::kChain;
    std::string name;
    std::int64_t start_us = 0;  // Unix epoch microseconds
    std::int64_t end_us = 0;    // 0 while open
    nlohmann::json inputs = nlohmann::json::object();
    nlohmann::json outputs = nlohmann::json::object();
    std::int64_t prompt_tokens = 0;
    std::int64_t completion_tokens = 0;
    std::string error;  // "" when the span succeeded
};

struct TraceRecord {
    std::string trace_id;  // 32 hex digits
    std::string principal;
    std::string request_id;
    std::int64_t start_us = 0;
    std::int64_t end_us = 0;
    std::vector<Span> spans;  // in the order they began
};

// JSON text in which bytes that are not UTF-8 (from a document, a database, a model cut
// mid-character) become U+FFFD instead of throwing.
std::string dump_safe(const nlohmann::json& value);

std::string new_trace_id();
std::string new_span_id();
std::int64_t now_us();

class Trace {
public:
    Trace(std::string principal, std::string request_id);
    const std::string& id() const { return id_; }

    // Opens a span and returns its id.
    std::string begin(SpanKind kind, std::string name, const std::string& parent_id,
                      nlohmann::json inputs);
    // Closes it. Unknown ids are ignored (a bug in the caller, not worth a crash of the run).
    void end(const std::string& span_id, nlohmann::json outputs, std::string error);
    void add_tokens(const std::string& span_id, std::int64_t prompt, std::int64_t completion);

    // A copy of everything recorded; open spans end now.
    TraceRecord record() const;

private:
    std::string id_;
    std::string principal_;
    std::string request_id_;
    std::int64_t start_us_;
    mutable std::mutex mutex_;
    std::vector<Span> spans_;  // guarded by mutex_
};

// Opens a span on construction and ends it on destruction (with the outputs and error set).
class SpanScope {
public:
    SpanScope(Trace* trace, SpanKind kind, std::string name, const std::string& parent_id,
              nlohmann::json inputs);
    ~SpanScope();
    SpanScope(const SpanScope&) = delete;
    SpanScope& operator=(const SpanScope&) = delete;

    const std::string& id() const { return id_; }
    void set_outputs(nlohmann::json outputs) { outputs_ = std::move(outputs); }
    void fail(std::string error) { error_ = std::move(error); }
    void add_tokens(std::int64_t prompt, std::int64_t completion);

private:
    Trace* trace_;  // may be null: no tracing
    std::string id_;
    nlohmann::json outputs_ = nlohmann::json::object();
    std::string error_;
};

// The trace as the REST API shows it: {"trace_id", "principal", "request_id", "start_us",
// "end_us", "spans": [{"span_id", "parent_id", "kind", "name", "start_us", "end_us",
// "duration_ms", "inputs", "outputs", "prompt_tokens", "completion_tokens", "error"}]}.
nlohmann::json trace_to_json(const TraceRecord& trace);
// OTLP/JSON: {"resourceSpans": [{"resource": {...service.name...}, "scopeSpans": [{"scope",
// "spans": [{"traceId", "spanId", "parentSpanId", "name", "kind", "startTimeUnixNano",
// "endTimeUnixNano", "attributes": [{"key", "value": {...}}], "status"}]}]}]}.
nlohmann::json trace_to_otlp(const TraceRecord& trace);

class TraceStore {
public:
    // Opens catalog.db (or any SQLite file) and creates the trace tables when missing.
    static Result<std::unique_ptr<TraceStore>> open(const std::filesystem::path& db_path);
    ~TraceStore();

    // Writes the whole trace in one transaction (replacing one with the same id).
    Status save(const TraceRecord& trace);
    // kNotFound when no trace has this id; kInvalidArgument for a malformed id.
    Result<TraceRecord> get(const std::string& trace_id);

    struct Impl;
    explicit TraceStore(std::unique_ptr<Impl> impl);

private:
    std::unique_ptr<Impl> impl_;
};

}  // namespace sluice::agents
