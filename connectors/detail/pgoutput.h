#pragma once
// Decoding of pgoutput's logical replication messages (protocol version 1), as documented in
// PostgreSQL's "Logical Replication Message Formats": Begin, Commit, Relation, Insert, Update,
// Delete, Truncate; Origin and Type are recognised and ignored.
//
// Thread safety: pure functions.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace sluice::connectors::detail {

struct PgColumn {
    std::string name;
    std::uint32_t type_oid = 0;
    bool key = false;  // part of the replica identity
};

struct PgRelation {
    std::uint32_t id = 0;
    std::string schema;
    std::string table;
    char replica_identity = 'd';  // d default, f full, i index, n nothing
    std::vector<PgColumn> columns;
};

enum class PgValueKind { kNull, kUnchanged, kText };

struct PgValue {
    PgValueKind kind = PgValueKind::kNull;
    std::string text;
};

using PgTuple = std::vector<PgValue>;

enum class PgMessageKind { kBegin, kCommit, kRelation, kInsert, kUpdate, kDelete, kTruncate,
                           kIgnored };

struct PgMessage {
    PgMessageKind kind = PgMessageKind::kIgnored;
    std::uint64_t final_lsn = 0;   // Begin: the commit record's LSN
    std::uint64_t commit_lsn = 0;  // Commit
    std::uint64_t end_lsn = 0;     // Commit: the end of the commit record
    PgRelation relation;           // Relation
    std::uint32_t relation_id = 0;  // Insert, Update, Delete
    char old_kind = 0;             // Update/Delete: 'K' (key columns) or 'O' (whole old row)
    std::optional<PgTuple> old_tuple;
    PgTuple new_tuple;                        // Insert, Update
    std::vector<std::uint32_t> truncated;     // Truncate
};

// Errors: kDataLoss when the message is truncated or of an unknown shape.
Result<PgMessage> parse_pgoutput(std::string_view data);

}  // namespace sluice::connectors::detail
