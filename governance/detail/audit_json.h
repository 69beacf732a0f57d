#pragma once
// The canonical JSON of an audit record (governance/audit_log.h): what each record's hash
// covers and what export writes. The fields in key order, no spaces, strings escaped as JSON
// requires (the quote, the backslash and control characters; \n, \r and \t by name, the others
// as \u00XX; every other byte as it is). The format is fixed: logs written earlier must verify.
//
// Thread safety: stateless.

#include <cstdint>
#include <string>
#include <string_view>

#include "governance/audit_sink.h"

namespace sluice::governance::detail {

// Appends the canonical JSON of record `seq` to `out`, with "hash" (hex) when `hash` is given.
// The audit committer runs this for every record it writes, so it is written for speed: one
// resize of `out` for the worst case, then plain copies (see audit_json.cpp).
void append_record_json(std::string& out, std::int64_t seq, const AuditEvent& event,
                        std::string_view prev_hash, const std::string* hash);

}  // namespace sluice::governance::detail
