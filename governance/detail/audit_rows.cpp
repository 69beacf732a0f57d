#include "governance/detail/audit_rows.h"

#include "common/check.h"
#include "governance/detail/sqlite.h"

namespace sluice::governance::detail {
namespace {

constexpr int kColumns = 13;

std::size_t statement_slot(std::size_t rows) {
    for (std::size_t slot = 0; slot < AuditRowWriter::kRowsPerStatement.size(); ++slot) {
        if (AuditRowWriter::kRowsPerStatement[slot] == rows) {
            return slot;
        }
    }
    SLUICE_CHECK(false, "no audit insert statement of " + std::to_string(rows) + " rows");
    return 0;
}

}  // namespace

std::string AuditRowWriter::insert_sql(std::size_t rows) {
    std::string sql =
        "INSERT INTO audit_log (seq, time_us, principal, action, securable, result, request_id, "
        "client, token_id, decided_by, details, prev_hash, hash) VALUES ";
    for (std::size_t row = 0; row < rows; ++row) {
        sql += row == 0 ? "(?,?,?,?,?,?,?,?,?,?,?,?,?)" : ",(?,?,?,?,?,?,?,?,?,?,?,?,?)";
    }
    return sql;
}

AuditRowWriter::AuditRowWriter(Database& db) : db_(db) { rows_.reserve(kMaxRows); }

Status AuditRowWriter::add(std::int64_t seq, const AuditEvent& event, const Digest& prev_hash,
                           const Digest& hash) {
    rows_.push_back(Row{seq, &event, prev_hash, hash});
    if (rows_.size() < kMaxRows) {
        return Status();
    }
    Status inserted = insert(0, kMaxRows);
    rows_.clear();
    return inserted;
}

Status AuditRowWriter::flush() {
    std::size_t first = 0;
    for (std::size_t rows : kRowsPerStatement) {
        while (rows_.size() - first >= rows) {
            Status inserted = insert(first, rows);
            if (!inserted.ok()) {
                rows_.clear();
                return inserted;
            }
            first += rows;
        }
    }
    rows_.clear();
    return Status();
}

Status AuditRowWriter::insert(std::size_t first, std::size_t count) {
    Statement*& statement = statements_[statement_slot(count)];
    if (statement == nullptr) {
        SLUICE_ASSIGN_OR_RETURN(statement, db_.cached(insert_sql(count)));
    }
    // The values are bound without copies; reset clears them however this ends, before the
    // rows (and the events they point to) change.
    struct ResetAfter {
        Statement* statement;
        ~ResetAfter() { statement->reset(); }
    } reset_after{statement};
    int parameter = 1;
    std::int64_t expected_rowid = last_rowid_;
    for (std::size_t i = first; i < first + count; ++i) {
        const Row& row = rows_[i];
        const AuditEvent& e = *row.event;
        // A row that follows the last one takes the next rowid (see the header); checked below.
        if (row.seq == expected_rowid + 1 && expected_rowid != 0) {
            statement->bind_null(parameter);
        } else {
            statement->bind(parameter, row.seq);
        }
        expected_rowid = row.seq;
        statement->bind(parameter + 1, e.time_us)
            .bind_static(parameter + 2, e.principal)
            .bind_static(parameter + 3, e.action)
            .bind_static(parameter + 4, e.securable)
            .bind_static(parameter + 5, e.result)
            .bind_static(parameter + 6, e.request_id)
            .bind_static(parameter + 7, e.client)
            .bind_static(parameter + 8, e.token_id)
            .bind_static(parameter + 9, e.decided_by)
            .bind_static(parameter + 10, e.details)
            .bind_blob_static(parameter + 11, row.prev_hash.data(), row.prev_hash.size())
            .bind_blob_static(parameter + 12, row.hash.data(), row.hash.size());
        parameter += kColumns;
    }
    ++statements_run_;
    last_rowid_ = 0;  // until the statement has stored what it should
    SLUICE_RETURN_IF_ERROR(statement->run());
    if (db_.last_insert_rowid() != expected_rowid) {
        // Someone else wrote the table inside this transaction: a broken invariant.
        return internal_error("audit record " + std::to_string(expected_rowid) +
                              " was stored as row " + std::to_string(db_.last_insert_rowid()));
    }
    last_rowid_ = expected_rowid;
    return Status();
}

}  // namespace sluice::governance::detail
