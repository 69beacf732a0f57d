#include "agents/trace.h"

#include <array>
#include <random>

#include "agents/detail/sqlite.h"
#include "common/log.h"

namespace sluice::agents {
namespace {

using nlohmann::json;

std::string random_hex(size_t digits) {
    // One generator per thread, seeded from the OS: ids need uniqueness, not secrecy.
    thread_local std::mt19937_64 generator{std::random_device{}()};
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    out.reserve(digits);
    while (out.size() < digits) {
        std::uint64_t bits = generator();
        for (int nibble = 0; nibble < 16 && out.size() < digits; ++nibble) {
            out.push_back(kHex[bits & 0xF]);
            bits >>= 4;
        }
    }
    return out;
}

bool is_hex_id(const std::string& id, size_t digits) {
    if (id.size() != digits) {
        return false;
    }
    for (char c : id) {
        bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
        if (!hex) {
            return false;
        }
    }
    return true;
}

json otlp_value(const json& value) {
    if (value.is_string()) {
        return {{"stringValue", value.get<std::string>()}};
    }
    if (value.is_number_integer()) {
        return {{"intValue", std::to_string(value.get<std::int64_t>())}};
    }
    if (value.is_number()) {
        return {{"doubleValue", value.get<double>()}};
    }
    if (value.is_boolean()) {
        return {{"boolValue", value.get<bool>()}};
    }
    return {{"stringValue", value.dump()}};
}

json attribute(std::string key, const json& value) {
    return {{"key", std::move(key)}, {"value", otlp_value(value)}};
}

}  // namespace

std::string_view span_kind_name(SpanKind kind) {
    switch (kind) {
        case SpanKind::kAgent: return "agent";
        case SpanKind::kLlm: return "llm";
        case SpanKind::kRetriever: return "retriever";
        case SpanKind::kTool: return "tool";
        case SpanKind::kChain: return "chain";
    }
    return "chain";
}

Result<SpanKind> parse_span_kind(std::string_view text) {
    for (SpanKind kind : {SpanKind::kAgent, SpanKind::kLlm, SpanKind::kRetriever, SpanKind::kTool,
                          SpanKind::kChain}) {
        if (span_kind_name(kind) == text) {
            return kind;
        }
    }
    return invalid_argument("span kind '" + std::string(text) +
                            "': expected agent, llm, retriever, tool or chain");
}

std::string dump_safe(const json& value) {
    return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string new_trace_id() { return random_hex(32); }
std::string new_span_id() { return random_hex(16); }

std::int64_t now_us() {
    return std::chrono::duration_cast<std::chrono::microseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

Trace::Trace(std::string principal, std::string request_id)
    : id_(new_trace_id()),
      principal_(std::move(principal)),
      request_id_(std::move(request_id)),
      start_us_(now_us()) {}

std::string Trace::begin(SpanKind kind, std::string name, const std::string& parent_id,
                         json inputs) {
    Span span;
    span.span_id = new_span_id();
    span.parent_id = parent_id;
    span.kind = kind;
    span.name = std::move(name);
    span.start_us = now_us();
    span.inputs = std::move(inputs);
    std::lock_guard lock(mutex_);
    spans_.push_back(std::move(span));
    return spans_.back().span_id;
}

void Trace::end(const std::string& span_id, json outputs, std::string error) {
    std::lock_guard lock(mutex_);
    for (Span& span : spans_) {
        if (span.span_id == span_id) {
            span.end_us = now_us();
            span.outputs = std::move(outputs);
            span.error = std::move(error);
            return;
        }
    }
}

void Trace::add_tokens(const std::string& span_id, std::int64_t prompt, std::int64_t completion) {
    std::lock_guard lock(mutex_);
    for (Span& span : spans_) {
        if (span.span_id == span_id) {
            span.prompt_tokens += prompt;
            span.completion_tokens += completion;
            return;
        }
    }
}

TraceRecord Trace::record() const {
    TraceRecord record;
    record.trace_id = id_;
    record.principal = principal_;
    record.request_id = request_id_;
    record.start_us = start_us_;
    record.end_us = now_us();
    std::lock_guard lock(mutex_);
    record.spans = spans_;
    for (Span& span : record.spans) {
        if (span.end_us == 0) {
            span.end_us = record.end_us;
        }
    }
    return record;
}

SpanScope::SpanScope(Trace* trace, SpanKind kind, std::string name, const std::string& parent_id,
                     json inputs)
    : trace_(trace) {
    if (trace_ != nullptr) {
        id_ = trace_->begin(kind, std::move(name), parent_id, std::move(inputs));
    }
}

SpanScope::~SpanScope() {
    if (trace_ != nullptr) {
        trace_->end(id_, std::move(outputs_), std::move(error_));
    }
}

void SpanScope::add_tokens(std::int64_t prompt, std::int64_t completion) {
    if (trace_ != nullptr) {
        trace_->add_tokens(id_, prompt, completion);
    }
}

json trace_to_json(const TraceRecord& trace) {
    json spans = json::array();
    for (const Span& span : trace.spans) {
        spans.push_back({{"span_id", span.span_id},
                         {"parent_id", span.parent_id},
                         {"kind", span_kind_name(span.kind)},
                         {"name", span.name},
                         {"start_us", span.start_us},
                         {"end_us", span.end_us},
                         {"duration_ms", static_cast<double>(span.end_us - span.start_us) / 1000.0},
                         {"inputs", span.inputs},
                         {"outputs", span.outputs},
                         {"prompt_tokens", span.prompt_tokens},
                         {"completion_tokens", span.completion_tokens},
                         {"error", span.error}});
    }
    return {{"trace_id", trace.trace_id}, {"principal", trace.principal},
            {"request_id", trace.request_id}, {"start_us", trace.start_us},
            {"end_us", trace.end_us},       {"spans", spans}};
}

json trace_to_otlp(const TraceRecord& trace) {
    json spans = json::array();
    for (const Span& span : trace.spans) {
        json attributes = json::array();
        attributes.push_back(attribute("sluice.span.kind", std::string(span_kind_name(span.kind))));
        attributes.push_back(attribute("sluice.inputs", dump_safe(span.inputs)));
        attributes.push_back(attribute("sluice.outputs", dump_safe(span.outputs)));
        if (span.prompt_tokens != 0 || span.completion_tokens != 0) {
            attributes.push_back(attribute("gen_ai.usage.input_tokens", span.prompt_tokens));
            attributes.push_back(attribute("gen_ai.usage.output_tokens", span.completion_tokens));
        }
        json status = span.error.empty() ? json{{"code", 1}}
                                         : json{{"code", 2}, {"message", span.error}};
        // OTLP/JSON writes 64-bit nanosecond times as decimal strings.
        json out = {{"traceId", trace.trace_id},
                    {"spanId", span.span_id},
                    {"name", span.name},
                    {"kind", span.kind == SpanKind::kAgent ? 2 : 1},  // SERVER for the root run
                    {"startTimeUnixNano", std::to_string(span.start_us * 1000)},
                    {"endTimeUnixNano", std::to_string(span.end_us * 1000)},
                    {"attributes", attributes},
                    {"status", status}};
        if (!span.parent_id.empty()) {
            out["parentSpanId"] = span.parent_id;
        }
        spans.push_back(std::move(out));
    }
    json resource = {{"attributes", json::array({attribute("service.name", "sluice"),
                                                 attribute("enduser.id", trace.principal),
                                                 attribute("sluice.request_id",
                                                           trace.request_id)})}};
    return {{"resourceSpans",
             json::array({{{"resource", resource},
                           {"scopeSpans", json::array({{{"scope", {{"name", "sluice.agents"}}},
                                                        {"spans", spans}}})}}})}};
}

struct TraceStore::Impl {
    std::mutex mutex;
    detail::DbPtr db;  // guarded by mutex
};

TraceStore::TraceStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
TraceStore::~TraceStore() = default;

Result<std::unique_ptr<TraceStore>> TraceStore::open(const std::filesystem::path& db_path) {
    SLUICE_ASSIGN_OR_RETURN(detail::DbPtr db,
                            detail::open_db(db_path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE));
    SLUICE_RETURN_IF_ERROR(detail::exec(db.get(), R"sql(
        CREATE TABLE IF NOT EXISTS agent_traces (
            trace_id TEXT PRIMARY KEY, principal TEXT NOT NULL, request_id TEXT NOT NULL,
            start_us INTEGER NOT NULL, end_us INTEGER NOT NULL);
        CREATE INDEX IF NOT EXISTS agent_traces_by_principal
            ON agent_traces(principal, start_us);
        CREATE TABLE IF NOT EXISTS agent_spans (
            trace_id TEXT NOT NULL REFERENCES agent_traces(trace_id) ON DELETE CASCADE,
            ordinal INTEGER NOT NULL, span_id TEXT NOT NULL, parent_id TEXT NOT NULL,
            kind TEXT NOT NULL, name TEXT NOT NULL, start_us INTEGER NOT NULL,
            end_us INTEGER NOT NULL, inputs TEXT NOT NULL, outputs TEXT NOT NULL,
            prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL,
            error TEXT NOT NULL, PRIMARY KEY (trace_id, ordinal));
    )sql"));
    auto impl = std::make_unique<Impl>();
    impl->db = std::move(db);
    return std::make_unique<TraceStore>(std::move(impl));
}

Status TraceStore::save(const TraceRecord& trace) {
    if (!is_hex_id(trace.trace_id, 32)) {
        return invalid_argument("trace id '" + trace.trace_id + "': expected 32 hex digits");
    }
    std::lock_guard lock(impl_->mutex);
    sqlite3* db = impl_->db.get();
    detail::Transaction tx(db);
    SLUICE_RETURN_IF_ERROR(tx.begin());
    SLUICE_ASSIGN_OR_RETURN(auto remove,
                            detail::prepare(db, "DELETE FROM agent_spans WHERE trace_id = ?"));
    detail::bind_text(remove.get(), 1, trace.trace_id);
    if (sqlite3_step(remove.get()) != SQLITE_DONE) {
        return detail::sqlite_error(db, "trace " + trace.trace_id);
    }
    SLUICE_ASSIGN_OR_RETURN(auto head, detail::prepare(db, "INSERT OR REPLACE INTO agent_traces "
                                                           "VALUES (?, ?, ?, ?, ?)"));
    detail::bind_text(head.get(), 1, trace.trace_id);
    detail::bind_text(head.get(), 2, trace.principal);
    detail::bind_text(head.get(), 3, trace.request_id);
    sqlite3_bind_int64(head.get(), 4, trace.start_us);
    sqlite3_bind_int64(head.get(), 5, trace.end_us);
    if (sqlite3_step(head.get()) != SQLITE_DONE) {
        return detail::sqlite_error(db, "trace " + trace.trace_id);
    }
    SLUICE_ASSIGN_OR_RETURN(auto insert,
                            detail::prepare(db, "INSERT INTO agent_spans VALUES "
                                                "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"));
    int ordinal = 0;
    for (const Span& span : trace.spans) {
        sqlite3_reset(insert.get());
        detail::bind_text(insert.get(), 1, trace.trace_id);
        sqlite3_bind_int(insert.get(), 2, ordinal++);
        detail::bind_text(insert.get(), 3, span.span_id);
        detail::bind_text(insert.get(), 4, span.parent_id);
        detail::bind_text(insert.get(), 5, span_kind_name(span.kind));
        detail::bind_text(insert.get(), 6, span.name);
        sqlite3_bind_int64(insert.get(), 7, span.start_us);
        sqlite3_bind_int64(insert.get(), 8, span.end_us);
        detail::bind_text(insert.get(), 9, dump_safe(span.inputs));
        detail::bind_text(insert.get(), 10, dump_safe(span.outputs));
        sqlite3_bind_int64(insert.get(), 11, span.prompt_tokens);
        sqlite3_bind_int64(insert.get(), 12, span.completion_tokens);
        detail::bind_text(insert.get(), 13, span.error);
        if (sqlite3_step(insert.get()) != SQLITE_DONE) {
            return detail::sqlite_error(db, "span of trace " + trace.trace_id);
        }
    }
    return tx.commit();
}

Result<TraceRecord> TraceStore::get(const std::string& trace_id) {
    if (!is_hex_id(trace_id, 32)) {
        return invalid_argument("trace id '" + trace_id + "': expected 32 lower-case hex digits");
    }
    std::lock_guard lock(impl_->mutex);
    sqlite3* db = impl_->db.get();
    SLUICE_ASSIGN_OR_RETURN(auto head, detail::prepare(db, "SELECT principal, request_id, "
                                                           "start_us, end_us FROM agent_traces "
                                                           "WHERE trace_id = ?"));
    detail::bind_text(head.get(), 1, trace_id);
    int rc = sqlite3_step(head.get());
    if (rc == SQLITE_DONE) {
        return not_found("trace '" + trace_id + "' does not exist");
    }
    if (rc != SQLITE_ROW) {
        return detail::sqlite_error(db, "trace " + trace_id);
    }
    TraceRecord trace;
    trace.trace_id = trace_id;
    trace.principal = detail::column_text(head.get(), 0);
    trace.request_id = detail::column_text(head.get(), 1);
    trace.start_us = sqlite3_column_int64(head.get(), 2);
    trace.end_us = sqlite3_column_int64(head.get(), 3);
    SLUICE_ASSIGN_OR_RETURN(
        auto spans,
        detail::prepare(db, "SELECT span_id, parent_id, kind, name, start_us, end_us, inputs, "
                            "outputs, prompt_tokens, completion_tokens, error FROM agent_spans "
                            "WHERE trace_id = ? ORDER BY ordinal"));
    detail::bind_text(spans.get(), 1, trace_id);
    while ((rc = sqlite3_step(spans.get())) == SQLITE_ROW) {
        Span span;
        span.span_id = detail::column_text(spans.get(), 0);
        span.parent_id = detail::column_text(spans.get(), 1);
        auto kind = parse_span_kind(detail::column_text(spans.get(), 2));
        if (!kind.ok()) {
            return data_loss("trace " + trace_id + ": " + kind.status().message());
        }
        span.kind = *kind;
        span.name = detail::column_text(spans.get(), 3);
        span.start_us = sqlite3_column_int64(spans.get(), 4);
        span.end_us = sqlite3_column_int64(spans.get(), 5);
        span.inputs = json::parse(detail::column_text(spans.get(), 6), nullptr, false);
        span.outputs = json::parse(detail::column_text(spans.get(), 7), nullptr, false);
        if (span.inputs.is_discarded() || span.outputs.is_discarded()) {
            return data_loss("trace " + trace_id + ": span " + span.span_id + " is not JSON");
        }
        span.prompt_tokens = sqlite3_column_int64(spans.get(), 8);
        span.completion_tokens = sqlite3_column_int64(spans.get(), 9);
        span.error = detail::column_text(spans.get(), 10);
        trace.spans.push_back(std::move(span));
    }
    if (rc != SQLITE_DONE) {
        return detail::sqlite_error(db, "spans of trace " + trace_id);
    }
    return trace;
}

}  // namespace sluice::agents
