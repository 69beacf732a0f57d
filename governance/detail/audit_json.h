#pragma once
// The canonical JSON of an audit record (governance/audit_log.h): what each record's hash
// covers and what export writes. The fields in key order, no spaces, strings escaped as JSON
// requires (the quote, the backslash and control characters; \n, \r and \t by name, the others
// as \u00XX; every other byte as it is). The format is fixed: logs written earlier must verify.
//
// Thread safety: stateless.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "governance/audit_sink.h"

namespace sluice::governance::detail {

// Appends the canonical JSON of record `seq` to `out`, with "hash" (hex) when `hash` is given.
// The audit committer runs this for every record it writes, so it is written for speed: one
// resize of `out` for the worst case, then plain copies (see audit_json.cpp).
void append_record_json(std::string& out, std::int64_t seq, const AuditEvent& event,
                        std::string_view prev_hash, const std::string* hash);

// Appends `text` as a JSON string, escaped as the canonical JSON escapes it.
void append_json_string(std::string& out, std::string_view text);

// A record read back from the JSON that append_record_json() wrote with its hash (an archive's
// line); hashes are raw bytes.
struct ParsedRecord {
    std::int64_t seq = 0;
    AuditEvent event;
    std::string prev_hash;
    std::string hash;
};

// Reads `json` back into the record, or nullopt unless `json` is exactly what
// append_record_json() writes for it (keys in order, no spaces, the same escapes): the bytes
// that were hashed can then be recomputed from the fields.
std::optional<ParsedRecord> parse_record_json(std::string_view json);

}  // namespace sluice::governance::detail
