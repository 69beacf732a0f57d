#include "app/source_feed.h"

#include "app/vector_search_json.h"

namespace sluice::app {

using nlohmann::json;

retrieval::Document to_retrieval_document(const std::string& source_name,
                                          const connectors::ChangeEvent& event) {
    retrieval::Document doc;
    doc.key = event.key;
    doc.text = event.document.text;
    doc.acl.principals = event.document.acl.principals;
    doc.acl.groups = event.document.acl.groups;
    const json& metadata = event.document.metadata;
    if (metadata.is_object()) {
        for (const auto& [name, value] : metadata.items()) {
            if (value.is_string()) {
                doc.metadata[name] = value.get<std::string>();
            } else if (value.is_number()) {
                // A source's integer column stays an integer, as the REST API's integers do.
                doc.metadata[name] = metadata_number(value);
            } else if (value.is_boolean()) {
                // A Postgres bool column or a JSON boolean; SQLite has no boolean type, its
                // BOOLEAN columns hold the integers 0 and 1 and stay integers.
                doc.metadata[name] = value.get<bool>();
            }
        }
        if (auto title = metadata.find("title"); title != metadata.end() && title->is_string()) {
            doc.title = title->get<std::string>();
        }
        if (auto path = metadata.find("path"); path != metadata.end() && path->is_string()) {
            doc.uri = path->get<std::string>();
        }
    }
    if (doc.uri.empty()) {
        doc.uri = source_name + ":" + event.key;
    }
    doc.metadata["source"] = source_name;
    return doc;
}

SourceFeed::SourceFeed(std::string source_name, std::shared_ptr<connectors::Source> source)
    : name_(std::move(source_name)), source_(std::move(source)) {}

Result<retrieval::FeedBatch> SourceFeed::poll(std::string_view checkpoint,
                                              std::size_t max_changes) {
    SLUICE_ASSIGN_OR_RETURN(connectors::Batch batch,
                            source_->poll(checkpoint, connectors::PollOptions{max_changes}));
    retrieval::FeedBatch out;
    out.changes.reserve(batch.events.size());
    for (const auto& event : batch.events) {
        retrieval::FeedChange change;
        change.op = event.op == connectors::Op::kDelete ? retrieval::FeedOp::kDelete
                                                        : retrieval::FeedOp::kUpsert;
        if (change.op == retrieval::FeedOp::kDelete) {
            change.document.key = event.key;
        } else {
            change.document = to_retrieval_document(name_, event);
        }
        change.offset = event.offset;
        out.changes.push_back(std::move(change));
    }
    for (const auto& error : batch.errors) {
        out.errors.push_back(retrieval::FeedError{error.key, error.message, error.offset});
    }
    out.checkpoint = std::move(batch.checkpoint);
    out.caught_up = batch.caught_up;
    out.paused = batch.paused;
    return out;
}

Status SourceFeed::acknowledge(std::string_view checkpoint) {
    return source_->acknowledge(checkpoint);
}

Result<bool> SourceFeed::wait(std::chrono::milliseconds timeout) { return source_->wait(timeout); }

void SourceFeed::wake() { source_->wake(); }

std::optional<std::uint64_t> SourceFeed::backlog() {
    // A status query costs the source a round trip; once a second is enough for a gauge.
    const auto now = std::chrono::steady_clock::now();
    if (now - backlog_at_ < std::chrono::seconds(1)) {
        return backlog_;
    }
    backlog_at_ = now;
    backlog_.reset();
    auto status = source_->status();
    if (!status.ok() || !status->is_object()) {
        return backlog_;
    }
    for (const char* field : {"pending_changes", "pending_events"}) {
        auto it = status->find(field);
        if (it != status->end() && it->is_number_integer() && it->get<std::int64_t>() >= 0) {
            backlog_ = it->get<std::uint64_t>();
        }
    }
    return backlog_;
}

}  // namespace sluice::app
