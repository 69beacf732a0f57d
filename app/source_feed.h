#pragma once
// The adapter between connectors and retrieval: a retrieval::ChangeFeed over a
// connectors::Source. The two modules do not know each other (docs/design.md); this is where
// change events become retrieval documents.
//
// Mapping of a connectors::Document to a retrieval::Document:
//   key      the event key
//   text     the document text
//   title    metadata "title" when it is a string
//   uri      metadata "path" when it is a string, else "<source>:<key>"
//   metadata scalar metadata fields (strings; numbers as numbers; booleans as booleans),
//            plus "source" = the source's name; arrays and objects (headings, page starts) are
//            left out: filters compare scalars only
//   acl      principals and groups as given (an empty acl is readable by nobody)
//
// Thread safety: as the Source: owned by the syncing thread; wake() from any thread.

#include <memory>
#include <string>

#include "connectors/source.h"
#include "retrieval/sync.h"

namespace sluice::app {

retrieval::Document to_retrieval_document(const std::string& source_name,
                                          const connectors::ChangeEvent& event);

class SourceFeed final : public retrieval::ChangeFeed {
public:
    // `source` is shared so that an HTTP push source can be fed by the push route and read here.
    SourceFeed(std::string source_name, std::shared_ptr<connectors::Source> source);

    Result<retrieval::FeedBatch> poll(std::string_view checkpoint,
                                      std::size_t max_changes) override;
    Status acknowledge(std::string_view checkpoint) override;
    Result<bool> wait(std::chrono::milliseconds timeout) override;
    void wake() override;
    // The source's own count: "pending_changes" (sqlite) or "pending_events" (http).
    std::optional<std::uint64_t> backlog() override;

private:
    std::string name_;
    std::shared_ptr<connectors::Source> source_;
    std::chrono::steady_clock::time_point backlog_at_{};
    std::optional<std::uint64_t> backlog_;
};

}  // namespace sluice::app
