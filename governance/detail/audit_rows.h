#pragma once
// AuditRowWriter: inserts a batch's chained audit records into `audit_log` with multi-row
// INSERT statements.
//
// One statement per record spent more on running the statement (its start, halt and reset,
// about 2 µs) than on the row itself; a statement of many rows pays that once. Rows are gathered
// until a statement of kMaxRows rows is full; what is left at flush() goes in statements of 16,
// 4 and 1 rows (at most 3 of each size), so that four cached statements cover every count.
// The rows of one batch all go in inside the caller's transaction: a failing statement fails
// the batch, and the caller's rollback takes back every row of it.
//
// seq is the table's rowid. The first row after clear() names its seq; a row whose seq follows
// the row inserted before it goes in without one, and SQLite gives it the table's largest
// rowid plus one from where its cursor stands, instead of seeking the given rowid to check
// that it is free (about a sixth of a row's insert). Every statement then checks that its last
// row got the seq it should (kInternal otherwise, and the caller's rollback undoes it).
// Consequence for triggers: a BEFORE INSERT trigger sees NEW.seq as -1 for such rows.
//
// Thread safety: owned by one thread at a time (the audit committer, under its database lock).

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "governance/audit_sink.h"

namespace sluice::governance::detail {

class Database;
class Statement;

class AuditRowWriter {
public:
    using Digest = std::array<unsigned char, 32>;
    // Rows per statement, largest first; each is 4 times the next.
    static constexpr std::array<std::size_t, 4> kRowsPerStatement = {64, 16, 4, 1};
    static constexpr std::size_t kMaxRows = kRowsPerStatement.front();

    explicit AuditRowWriter(Database& db);

    // Adds the record `seq`. Its strings are bound without copies: `event` must stay alive and
    // unchanged until flush() or clear() returns. Inserts a full statement's rows when kMaxRows
    // are waiting; its error then.
    Status add(std::int64_t seq, const AuditEvent& event, const Digest& prev_hash,
               const Digest& hash);
    // Inserts every row added and not yet inserted.
    Status flush();
    // Forgets the rows not inserted (after a failed batch, before the next one), and the seq
    // of the last row inserted: the next batch starts by naming its first seq, since others may
    // have written the table in between (another process, retention).
    void clear() {
        rows_.clear();
        last_rowid_ = 0;
    }
    // Statements run since construction (for tests: how the rows were grouped).
    std::int64_t statements_run() const { return statements_run_; }

    // The INSERT of `rows` rows (exposed for tests).
    static std::string insert_sql(std::size_t rows);

private:
    struct Row {
        std::int64_t seq = 0;
        const AuditEvent* event = nullptr;
        Digest prev_hash{};
        Digest hash{};
    };
    // Inserts rows_[first, first + count) with the statement of `count` rows.
    Status insert(std::size_t first, std::size_t count);

    Database& db_;
    std::vector<Row> rows_;  // capacity kMaxRows, never grows: bound digests stay in place
    std::array<Statement*, kRowsPerStatement.size()> statements_{};  // cached in db_, lazily
    std::int64_t statements_run_ = 0;
    // The seq of the last row this writer inserted and checked since clear(); 0 when the next
    // row must name its seq.
    std::int64_t last_rowid_ = 0;
};

}  // namespace sluice::governance::detail
