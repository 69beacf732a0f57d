// Reading the audit log back: verification, export as JSON lines, and retention by archive.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <ostream>
#include <sstream>

#include "governance/audit_log.h"
#include "governance/detail/audit_format.h"
#include "governance/detail/crypto.h"
#include "governance/detail/sqlite.h"
#include "governance/store.h"

namespace sluice::governance {
namespace {

constexpr std::string_view kSelectRecords =
    "SELECT seq, time_us, principal, action, securable, result, request_id, client, token_id, "
    "decided_by, details, prev_hash, hash FROM audit_log ";

AuditRecord record_from_row(const detail::Statement& row) {
    AuditRecord r;
    r.seq = row.column_int(0);
    r.event.time_us = row.column_int(1);
    r.event.principal = row.column_text(2);
    r.event.action = row.column_text(3);
    r.event.securable = row.column_text(4);
    r.event.result = row.column_text(5);
    r.event.request_id = row.column_text(6);
    r.event.client = row.column_text(7);
    r.event.token_id = row.column_text(8);
    r.event.decided_by = row.column_text(9);
    r.event.details = row.column_text(10);
    r.prev_hash = row.column_blob(11);
    r.hash = row.column_blob(12);
    return r;
}

// Where the chain in the table starts: after the last archive, or at the genesis.
struct Anchor {
    std::int64_t seq = 0;
    std::string hash = std::string(32, '\0');
};

Result<Anchor> read_anchor(detail::Database& db) {
    SLUICE_ASSIGN_OR_RETURN(auto select, db.prepare("SELECT last_seq, last_hash FROM "
                                                    "audit_archives ORDER BY last_seq DESC "
                                                    "LIMIT 1"));
    SLUICE_ASSIGN_OR_RETURN(bool row, select.step());
    Anchor anchor;
    if (row) {
        anchor.seq = select.column_int(0);
        anchor.hash = select.column_blob(1);
    }
    return anchor;
}

// Checks one record against the chain so far; returns the problem, or "" when it holds.
std::string check_record(const AuditRecord& record, std::int64_t expected_seq,
                         const std::string& expected_prev) {
    if (record.seq != expected_seq) {
        return record.seq > expected_seq
                   ? "expected seq " + std::to_string(expected_seq) + ", found " +
                         std::to_string(record.seq) + ": records were removed before it"
                   : "seq " + std::to_string(record.seq) + " repeats or goes backwards";
    }
    if (record.prev_hash != expected_prev) {
        return "prev_hash does not match the hash of the record before it: a record was "
               "inserted, removed or reordered here";
    }
    if (audit_record_hash(record) != record.hash) {
        return "content does not match its hash: the record was changed";
    }
    return "";
}

}  // namespace

Result<AuditVerifyReport> verify_audit_log(const std::filesystem::path& db_path,
                                           std::optional<std::string> trusted_public_key) {
    SLUICE_ASSIGN_OR_RETURN(auto db, detail::Database::open(db_path.string()));
    // One read transaction: a consistent view while the server keeps appending.
    SLUICE_RETURN_IF_ERROR(db->exec("BEGIN"));
    SLUICE_ASSIGN_OR_RETURN(Anchor anchor, read_anchor(*db));

    std::map<std::int64_t, std::pair<std::string, bool>> checkpoints;  // seq → (hash, matched)
    AuditVerifyReport report;
    auto fail = [&report](std::int64_t seq, std::string problem) {
        report.ok = false;
        report.first_bad_seq = seq;
        report.problem = std::move(problem);
    };
    SLUICE_ASSIGN_OR_RETURN(auto signatures,
                            db->prepare("SELECT seq, hash, public_key, signature, "
                                        "checkpoint_every FROM audit_checkpoints ORDER BY seq"));
    while (true) {
        SLUICE_ASSIGN_OR_RETURN(bool row, signatures.step());
        if (!row) {
            break;
        }
        std::int64_t seq = signatures.column_int(0);
        std::string hash = signatures.column_blob(1);
        std::string public_key = signatures.column_blob(2);
        ++report.checkpoints;
        if (trusted_public_key && public_key != *trusted_public_key) {
            fail(seq, "checkpoint at seq " + std::to_string(seq) +
                          " is signed by a key other than the data directory's");
            return report;
        }
        // The interval is part of what was signed (NULL: message version 1, signed before it
        // was recorded).
        const std::int64_t every = signatures.column_optional_int(4).value_or(0);
        if (!detail::ed25519_verify(public_key, detail::audit_checkpoint_message(seq, hash, every),
                                    signatures.column_blob(3))) {
            fail(seq, "checkpoint at seq " + std::to_string(seq) + " has a bad signature");
            return report;
        }
        if (seq > anchor.seq) {
            checkpoints[seq] = {hash, false};
        }
    }

    SLUICE_ASSIGN_OR_RETURN(auto records, db->prepare(std::string(kSelectRecords) +
                                                      "ORDER BY seq"));
    std::int64_t expected_seq = anchor.seq + 1;
    std::string expected_prev = anchor.hash;
    while (true) {
        SLUICE_ASSIGN_OR_RETURN(bool row, records.step());
        if (!row) {
            break;
        }
        AuditRecord record = record_from_row(records);
        if (report.records == 0) {
            report.first_seq = record.seq;
        }
        ++report.records;
        std::string problem = check_record(record, expected_seq, expected_prev);
        if (problem.empty()) {
            auto checkpoint = checkpoints.find(record.seq);
            if (checkpoint != checkpoints.end()) {
                if (checkpoint->second.first != record.hash) {
                    problem = "hash differs from the signed checkpoint at this seq";
                }
                checkpoint->second.second = true;
            }
        }
        if (!problem.empty()) {
            fail(record.seq, "record " + std::to_string(record.seq) + ": " + problem);
            return report;
        }
        report.last_seq = record.seq;
        expected_seq = record.seq + 1;
        expected_prev = record.hash;
    }
    for (const auto& [seq, entry] : checkpoints) {
        if (!entry.second) {
            fail(expected_seq, "signed checkpoint at seq " + std::to_string(seq) +
                                   " is past the last record " + std::to_string(report.last_seq) +
                                   ": records at the end were removed");
            return report;
        }
    }
    return report;
}

Result<std::int64_t> export_audit_log(const std::filesystem::path& db_path, std::int64_t after_seq,
                                      std::int64_t limit, std::ostream& out) {
    SLUICE_ASSIGN_OR_RETURN(auto db, detail::Database::open(db_path.string()));
    SLUICE_ASSIGN_OR_RETURN(auto records,
                            db->prepare(std::string(kSelectRecords) +
                                        "WHERE seq > ? ORDER BY seq LIMIT ?"));
    records.bind(1, after_seq).bind(2, limit > 0 ? limit : -1);
    std::int64_t written = 0;
    while (true) {
        SLUICE_ASSIGN_OR_RETURN(bool row, records.step());
        if (!row) {
            break;
        }
        out << audit_record_json(record_from_row(records), true) << '\n';
        ++written;
    }
    if (!out) {
        return io_error("writing the audit export failed after " + std::to_string(written) +
                        " records");
    }
    return written;
}

Result<AuditArchiveReport> archive_audit_log(const std::filesystem::path& db_path,
                                             std::int64_t up_to_seq,
                                             const std::filesystem::path& archive_file) {
    std::error_code ec;
    if (std::filesystem::exists(archive_file, ec)) {
        return Status(StatusCode::kAlreadyExists,
                      "archive file " + archive_file.string() + " exists; choose a new name");
    }
    SLUICE_ASSIGN_OR_RETURN(AuditVerifyReport verified, verify_audit_log(db_path, std::nullopt));
    if (!verified.ok) {
        return data_loss("audit log does not verify, refusing to archive: " + verified.problem);
    }
    SLUICE_ASSIGN_OR_RETURN(auto db, detail::Database::open(db_path.string()));
    SLUICE_ASSIGN_OR_RETURN(auto transaction, detail::Transaction::begin(*db));
    SLUICE_ASSIGN_OR_RETURN(auto records, db->prepare(std::string(kSelectRecords) +
                                                      "WHERE seq <= ? ORDER BY seq"));
    records.bind(1, up_to_seq);
    std::string text;
    AuditArchiveReport report;
    std::string last_hash;
    while (true) {
        SLUICE_ASSIGN_OR_RETURN(bool row, records.step());
        if (!row) {
            break;
        }
        AuditRecord record = record_from_row(records);
        report.first_seq = report.records == 0 ? record.seq : report.first_seq;
        report.last_seq = record.seq;
        ++report.records;
        last_hash = record.hash;
        text += audit_record_json(record, true) + "\n";
    }
    records.reset();
    if (report.records == 0) {
        return failed_precondition("no audit records at or below seq " +
                                   std::to_string(up_to_seq) + " to archive");
    }

    // Written beside its final name, synced, renamed: the archive exists whole or not at all.
    std::filesystem::path temporary = archive_file.string() + ".tmp";
    int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        return io_error("creating " + temporary.string() + ": " + std::strerror(errno));
    }
    bool written = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
                   ::fsync(fd) == 0;
    ::close(fd);
    if (!written || ::rename(temporary.c_str(), archive_file.c_str()) != 0) {
        ::unlink(temporary.c_str());
        return io_error("writing archive " + archive_file.string() + ": " + std::strerror(errno));
    }

    // Read back what is on disk and check it is exactly what was meant before deleting anything.
    std::ifstream in(archive_file, std::ios::binary);
    std::stringstream back;
    back << in.rdbuf();
    if (back.str() != text) {
        return data_loss("archive " + archive_file.string() +
                         " does not read back as written; nothing was deleted");
    }
    report.file_sha256 = detail::to_hex(detail::sha256(text));

    SLUICE_RETURN_IF_ERROR(db->exec("INSERT INTO audit_purge_gate VALUES (" +
                                    std::to_string(report.last_seq) + ")"));
    SLUICE_ASSIGN_OR_RETURN(auto erase, db->prepare("DELETE FROM audit_log WHERE seq <= ?"));
    SLUICE_RETURN_IF_ERROR(erase.bind(1, report.last_seq).run());
    SLUICE_RETURN_IF_ERROR(db->exec("DELETE FROM audit_purge_gate"));
    SLUICE_ASSIGN_OR_RETURN(auto record,
                            db->prepare("INSERT INTO audit_archives (first_seq, last_seq, "
                                        "last_hash, file, file_sha256, archived_at_ms) VALUES "
                                        "(?, ?, ?, ?, ?, ?)"));
    SLUICE_RETURN_IF_ERROR(record.bind(1, report.first_seq)
                               .bind(2, report.last_seq)
                               .bind_blob(3, last_hash.data(), last_hash.size())
                               .bind(4, archive_file.string())
                               .bind(5, report.file_sha256)
                               .bind(6, now_ms())
                               .run());
    SLUICE_RETURN_IF_ERROR(transaction->commit());
    return report;
}

}  // namespace sluice::governance
