#pragma once
// What a source produces: change events about documents, identified by a key that is stable for
// the life of the document in its source ("docs/guide.md", "Track/42", "public.tickets/7").
//
// An upsert carries the whole document as it is now (never a diff), so that applying the same
// event twice, or an older event followed by a newer one, converges on the source's state. A
// delete carries only the key.
//
// Thread safety: value types.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.h"

namespace sluice::connectors {

enum class Op { kUpsert, kDelete };

std::string_view op_name(Op op);  // "upsert" | "delete"
Result<Op> parse_op(std::string_view name);

// Who may read a document: principals (users, service principals) and groups by name. Empty
// lists mean nobody but administrators; the retrieval layer filters hits by it.
struct Acl {
    std::vector<std::string> principals;
    std::vector<std::string> groups;

    bool empty() const { return principals.empty() && groups.empty(); }
    friend bool operator==(const Acl&, const Acl&) = default;
};

struct Document {
    std::string text;
    // A JSON object: source-specific structure (headings, page starts, title, row columns).
    nlohmann::json metadata = nlohmann::json::object();
    Acl acl;
};

struct ChangeEvent {
    std::string key;
    Op op = Op::kUpsert;
    Document document;  // empty for deletes
    // The event's position in its source, for display and tracing ("seq:1042", "lsn:0/16B3748#2",
    // "file:docs/a.md"). Offsets increase within a batch; they are not checkpoints.
    std::string offset;
};

// A record that something could not be turned into an event (a PDF that does not parse, a CSV
// row with the wrong number of fields). The source keeps going or pauses according to its policy;
// the record names the document key and says why.
struct ErrorRecord {
    std::string key;
    std::string message;
    std::string offset;
};

// JSON forms used by the CLI (`sluice source poll`) and the HTTP push API.
nlohmann::json to_json(const Acl& acl);
nlohmann::json to_json(const ChangeEvent& event);
nlohmann::json to_json(const ErrorRecord& error);

// Parses {"key", "op", "document": {"text", "metadata", "acl": {"principals", "groups"}}}.
// Errors: kInvalidArgument naming the field ("events[3].document.text: expected a string").
// `where` prefixes field names in messages.
Result<ChangeEvent> change_event_from_json(const nlohmann::json& value, std::string_view where);
Result<Acl> acl_from_json(const nlohmann::json& value, std::string_view where);

// Serialises compactly. Invalid UTF-8 in strings (a file in another encoding) is replaced with
// U+FFFD rather than failing, so that one odd document never stops a feed.
std::string dump_json(const nlohmann::json& value);

// Reads a principal or group list stored in a column or field: a JSON array of strings, or a
// comma-separated string. Blank names are dropped.
std::vector<std::string> parse_name_list(std::string_view text);

}  // namespace sluice::connectors
