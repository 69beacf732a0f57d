// Reading the audit log back: verification, export as JSON lines, and retention by archive.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <ostream>
#include <sstream>

#include "governance/audit_key_rotation.h"
#include "governance/audit_log.h"
#include "governance/detail/audit_format.h"
#include "governance/detail/audit_json.h"
#include "governance/detail/crypto.h"
#include "governance/detail/key_rotation_record.h"
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

// A signed checkpoint whose signature holds (under its own public key; whether that key was the
// one in use at its seq is checked once the rotations in the chain are known).
struct Checkpoint {
    std::string hash;
    std::int64_t every = 0;  // the interval it signed; 0: signed before intervals were recorded
    std::string public_key;
};
using Checkpoints = std::map<std::int64_t, Checkpoint>;  // by seq

struct Rotation {
    std::int64_t seq = 0;
    detail::KeyRotationDetails details;
};

// The chain as it is walked, from the genesis through the archives into the table.
struct Walk {
    std::int64_t next_seq = 1;
    std::string prev_hash = std::string(32, '\0');
    std::vector<Rotation> rotations;  // the signing key rotations met, in seq order

    // Checks `record` as the next one, and against the checkpoint at its seq; moves on when it
    // holds. Returns the problem, or "".
    std::string step(const AuditRecord& record, const Checkpoints& checkpoints) {
        std::string problem = check_record(record, next_seq, prev_hash);
        if (!problem.empty()) {
            return problem;
        }
        auto checkpoint = checkpoints.find(record.seq);
        if (checkpoint != checkpoints.end() && checkpoint->second.hash != record.hash) {
            return "hash differs from the signed checkpoint at this seq";
        }
        if (record.event.action == kAuditKeyRotationAction) {
            auto details = detail::parse_key_rotation_details(record.event.details);
            if (!details || record.event.result != "ok") {
                return "a signing key rotation whose details are not what a rotation writes";
            }
            rotations.push_back({record.seq, std::move(*details)});
        }
        next_seq = record.seq + 1;
        prev_hash = record.hash;
        return "";
    }
};

struct ArchiveRow {
    std::int64_t first_seq = 0;
    std::int64_t last_seq = 0;
    std::string last_hash;
    std::string file;
    std::string file_sha256;  // hex
};

Result<std::vector<ArchiveRow>> read_archive_rows(detail::Database& db) {
    SLUICE_ASSIGN_OR_RETURN(auto select, db.prepare("SELECT first_seq, last_seq, last_hash, file, "
                                                    "file_sha256 FROM audit_archives ORDER BY "
                                                    "first_seq, id"));
    std::vector<ArchiveRow> rows;
    while (true) {
        SLUICE_ASSIGN_OR_RETURN(bool row, select.step());
        if (!row) {
            return rows;
        }
        rows.push_back({select.column_int(0), select.column_int(1), select.column_blob(2),
                        select.column_text(3), select.column_text(4)});
    }
}

// The whole file, or nullopt when it does not exist.
Result<std::optional<std::string>> read_file(const std::filesystem::path& path) {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) {
        return std::optional<std::string>();
    }
    std::ifstream in(path, std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    if (!in) {
        return io_error("audit archive " + path.string() + " exists but cannot be read");
    }
    return std::optional<std::string>(text.str());
}

// Walks the records of an archive file's text; returns the problem and the seq it concerns, or
// "" when every line is a record that continues the chain.
std::pair<std::string, std::int64_t> walk_archive_text(std::string_view text, Walk& walk,
                                                       const Checkpoints& checkpoints,
                                                       std::int64_t& records) {
    std::size_t line_number = 0;
    while (!text.empty()) {
        const std::size_t end = text.find('\n');
        const std::string_view line = text.substr(0, end);
        text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);
        ++line_number;
        std::optional<detail::ParsedRecord> parsed = detail::parse_record_json(line);
        if (!parsed) {
            return {"line " + std::to_string(line_number) + " is not an audit record as the log "
                    "writes one",
                    walk.next_seq};
        }
        AuditRecord record{parsed->seq, std::move(parsed->event), std::move(parsed->prev_hash),
                           std::move(parsed->hash)};
        std::string problem = walk.step(record, checkpoints);
        if (!problem.empty()) {
            return {"record " + std::to_string(record.seq) + ": " + problem, record.seq};
        }
        ++records;
    }
    return {"", 0};
}

// Verification, one step per member function; each returns false once the report says why the
// log does not verify (errors reading the database are a Status instead).
class Verifier {
public:
    Verifier(detail::Database& db, const AuditVerifyOptions& options)
        : db_(db), options_(options) {}

    Result<AuditVerifyReport> run() {
        SLUICE_ASSIGN_OR_RETURN(bool ok, read_checkpoints());
        if (ok) {
            SLUICE_ASSIGN_OR_RETURN(ok, walk_archives());
        }
        if (ok) {
            SLUICE_ASSIGN_OR_RETURN(ok, walk_table());
        }
        if (ok && check_keys() && check_end() && check_placement()) {
            check_expected();
        }
        return report_;
    }

private:
    bool fail(std::int64_t seq, std::string problem) {
        report_.ok = false;
        report_.first_bad_seq = seq;
        report_.problem = std::move(problem);
        return false;
    }

    Result<bool> read_checkpoints() {
        SLUICE_ASSIGN_OR_RETURN(auto rows, db_.prepare("SELECT seq, hash, public_key, signature, "
                                                       "checkpoint_every FROM audit_checkpoints "
                                                       "ORDER BY seq"));
        while (true) {
            SLUICE_ASSIGN_OR_RETURN(bool row, rows.step());
            if (!row) {
                return true;
            }
            const std::int64_t seq = rows.column_int(0);
            Checkpoint checkpoint{rows.column_blob(1), rows.column_optional_int(4).value_or(0),
                                  rows.column_blob(2)};
            const std::string at = "checkpoint at seq " + std::to_string(seq);
            ++report_.checkpoints;
            // The interval is part of what was signed: one changed (or nulled, which selects
            // message version 1) fails like a changed hash.
            if (!detail::ed25519_verify(
                    checkpoint.public_key,
                    detail::audit_checkpoint_message(seq, checkpoint.hash, checkpoint.every),
                    rows.column_blob(3))) {
                return fail(seq, at + " has a bad signature");
            }
            report_.last_checkpoint_seq = seq;
            checkpoints_[seq] = std::move(checkpoint);
        }
    }

    // Archived records are read from their files: the table's row alone would let anyone who
    // can write the database hide any stretch of the log behind a made-up anchor.
    Result<bool> walk_archives() {
        SLUICE_ASSIGN_OR_RETURN(std::vector<ArchiveRow> rows, read_archive_rows(db_));
        for (const ArchiveRow& row : rows) {
            SLUICE_ASSIGN_OR_RETURN(bool ok, walk_archive(row));
            if (!ok) {
                return false;
            }
        }
        return true;
    }

    Result<bool> walk_archive(const ArchiveRow& row) {
        const std::filesystem::path path =
            options_.archive_dir.empty()
                ? std::filesystem::path(row.file)
                : options_.archive_dir / std::filesystem::path(row.file).filename();
        const std::string name = "archive " + path.string() + " (records " +
                                 std::to_string(row.first_seq) + " to " +
                                 std::to_string(row.last_seq) + ")";
        if (row.first_seq != walk_.next_seq) {
            return fail(walk_.next_seq, name + " does not start where the chain goes on, at seq " +
                                            std::to_string(walk_.next_seq) +
                                            ": archives or records are missing or made up");
        }
        SLUICE_ASSIGN_OR_RETURN(std::optional<std::string> text, read_file(path));
        if (!text && options_.allow_missing_archives) {
            // Kept offline: counted as unchecked, and the chain goes on from the recorded anchor.
            ++report_.archives_unverified;
            walk_.next_seq = row.last_seq + 1;
            walk_.prev_hash = row.last_hash;
            return true;
        }
        if (!text) {
            return fail(row.first_seq, name + " is missing: its records cannot be checked (give "
                                              "the folder that holds it, or accept archives kept "
                                              "offline as unverified)");
        }
        if (detail::to_hex(detail::sha256(*text)) != row.file_sha256) {
            return fail(row.first_seq, name + " does not match the SHA-256 recorded when it was "
                                              "written: it was changed or replaced");
        }
        auto [problem, seq] = walk_archive_text(*text, walk_, checkpoints_,
                                                report_.archived_records);
        if (!problem.empty()) {
            return fail(seq, name + ": " + problem);
        }
        if (walk_.next_seq != row.last_seq + 1 || walk_.prev_hash != row.last_hash) {
            return fail(row.last_seq, name + " ends at seq " +
                                            std::to_string(walk_.next_seq - 1) +
                                            ", not at the seq and hash its row records");
        }
        ++report_.archives;
        return true;
    }

    Result<bool> walk_table() {
        SLUICE_ASSIGN_OR_RETURN(auto records, db_.prepare(std::string(kSelectRecords) +
                                                          "ORDER BY seq"));
        while (true) {
            SLUICE_ASSIGN_OR_RETURN(bool row, records.step());
            if (!row) {
                return true;
            }
            AuditRecord record = record_from_row(records);
            if (report_.records == 0) {
                report_.first_seq = record.seq;
            }
            ++report_.records;
            std::string problem = walk_.step(record, checkpoints_);
            if (!problem.empty()) {
                return fail(record.seq, "record " + std::to_string(record.seq) + ": " + problem);
            }
            report_.last_seq = record.seq;
        }
    }

    // Whose signature each checkpoint must carry. Without rotations, the data directory's key's
    // (any key when none is trusted). With them, the key in use at its seq: the first rotation's
    // previous key before it, each rotation's new key from its record on; each rotation names
    // the key before it, its record is signed by its new key (the checkpoint at its seq), a held
    // previous key signed the handover, and the last one hands over to the data directory's key.
    bool check_keys() {
        const std::vector<Rotation>& rotations = walk_.rotations;
        report_.key_rotations = static_cast<std::int64_t>(rotations.size());
        for (std::size_t i = 0; i < rotations.size(); ++i) {
            const Rotation& rotation = rotations[i];
            const detail::KeyRotationDetails& d = rotation.details;
            const std::string at =
                "the signing key rotation at seq " + std::to_string(rotation.seq);
            if (i > 0 && d.previous_public_key != rotations[i - 1].details.public_key) {
                return fail(rotation.seq, at + " names a previous key other than the one the "
                                               "rotation before it handed over to");
            }
            auto signed_by_new = checkpoints_.find(rotation.seq);
            if (signed_by_new == checkpoints_.end() ||
                signed_by_new->second.public_key != d.public_key) {
                return fail(rotation.seq, at + " is not signed by the key it hands over to");
            }
            if (d.previous_key_held &&
                !detail::ed25519_verify(
                    d.previous_public_key,
                    detail::key_handover_message(d.previous_public_key, d.public_key),
                    d.handover_signature)) {
                return fail(rotation.seq, at + " says the previous key was held, but its "
                                               "handover signature does not verify with it");
            }
        }
        if (options_.trusted_public_key && !rotations.empty() &&
            rotations.back().details.public_key != *options_.trusted_public_key) {
            return fail(rotations.back().seq,
                        "the last signing key rotation, at seq " +
                            std::to_string(rotations.back().seq) +
                            ", hands over to a key other than the data directory's");
        }
        std::optional<std::string> in_use = rotations.empty()
                                                ? options_.trusted_public_key
                                                : rotations.front().details.previous_public_key;
        std::size_t next_rotation = 0;
        for (const auto& [seq, checkpoint] : checkpoints_) {
            while (next_rotation < rotations.size() && rotations[next_rotation].seq <= seq) {
                in_use = rotations[next_rotation++].details.public_key;
            }
            if (in_use && checkpoint.public_key != *in_use) {
                return fail(seq, "checkpoint at seq " + std::to_string(seq) +
                                     (rotations.empty()
                                          ? " is signed by a key other than the data directory's"
                                          : " is signed by a key other than the one the log's "
                                            "key rotations put in use there"));
            }
        }
        return true;
    }

    // A checkpoint past the last record: the records it signed were removed.
    bool check_end() {
        const std::int64_t last = walk_.next_seq - 1;
        if (checkpoints_.empty() || checkpoints_.rbegin()->first <= last) {
            return true;
        }
        return fail(walk_.next_seq, "signed checkpoint at seq " +
                                        std::to_string(checkpoints_.rbegin()->first) +
                                        " is past the last record " + std::to_string(last) +
                                        ": records at the end were removed");
    }

    // Where checkpoints must be. The log signs its first record, every multiple of its interval
    // and its head at open and close (audit_log.h), each with the records it signs; so between
    // two checkpoints lie at most the larger of their intervals (intervals change only when a
    // new writer opens, and a new writer signs its first record), and after the last fewer
    // records than its interval. Only the end matters for what can be forged (every record up
    // to a checkpoint is fixed by the chain); a gap elsewhere still means checkpoints were
    // deleted, which nothing legitimate does.
    bool check_placement() {
        const std::int64_t last = walk_.next_seq - 1;
        if (last == 0) {
            return true;
        }
        if (checkpoints_.empty()) {
            return fail(1, "no signed checkpoint covers the " + std::to_string(last) +
                               " records, though the log signs its first record: checkpoints "
                               "were removed");
        }
        for (auto at = checkpoints_.begin(), next = std::next(at); next != checkpoints_.end();
             at = next++) {
            const std::int64_t every = std::max(at->second.every, next->second.every);
            if (at->second.every != 0 && next->second.every != 0 &&
                next->first - at->first > every) {
                return fail(at->first + every,
                            "no signed checkpoint between seq " + std::to_string(at->first) +
                                " and seq " + std::to_string(next->first) +
                                ", though one is due every " + std::to_string(every) +
                                " records: checkpoints were removed");
            }
        }
        const auto& [seq, checkpoint] = *checkpoints_.rbegin();
        const std::int64_t every =
            checkpoint.every != 0 ? checkpoint.every : options_.checkpoint_every;
        if (last - seq >= every) {
            return fail(seq + every, "the last signed checkpoint is at seq " + std::to_string(seq) +
                                         " but the records go on to seq " + std::to_string(last) +
                                         ", though a checkpoint is due every " +
                                         std::to_string(every) +
                                         " records: checkpoints were removed, and the records "
                                         "after seq " + std::to_string(seq) +
                                         " may have been rewritten");
        }
        return true;
    }

    bool check_expected() {
        const std::int64_t expected = options_.expect_checkpoint_seq;
        if (expected == 0 || checkpoints_.contains(expected)) {
            return true;
        }
        return fail(expected, "the signed checkpoint at seq " + std::to_string(expected) +
                                  " seen before is gone: the log was cut back to an earlier "
                                  "state");
    }

    detail::Database& db_;
    const AuditVerifyOptions& options_;
    AuditVerifyReport report_;
    Checkpoints checkpoints_;
    Walk walk_;
};

}  // namespace

Result<AuditVerifyReport> verify_audit_log(const std::filesystem::path& db_path,
                                           const AuditVerifyOptions& options) {
    SLUICE_ASSIGN_OR_RETURN(auto db, detail::Database::open_existing(db_path.string()));
    // One read transaction: a consistent view while the server keeps appending.
    SLUICE_RETURN_IF_ERROR(db->exec("BEGIN"));
    return Verifier(*db, options).run();
}

Result<AuditVerifyReport> verify_audit_log(const std::filesystem::path& db_path,
                                           std::optional<std::string> trusted_public_key) {
    AuditVerifyOptions options;
    options.trusted_public_key = std::move(trusted_public_key);
    return verify_audit_log(db_path, options);
}

Result<bool> audit_log_is_empty(const std::filesystem::path& db_path) {
    SLUICE_ASSIGN_OR_RETURN(auto db, detail::Database::open_existing(db_path.string()));
    SLUICE_ASSIGN_OR_RETURN(auto any, db->prepare("SELECT EXISTS (SELECT 1 FROM audit_log) OR "
                                                  "EXISTS (SELECT 1 FROM audit_checkpoints) OR "
                                                  "EXISTS (SELECT 1 FROM audit_archives)"));
    SLUICE_ASSIGN_OR_RETURN(bool row, any.step());
    return !row || any.column_int(0) == 0;
}

Result<std::int64_t> export_audit_log(const std::filesystem::path& db_path, std::int64_t after_seq,
                                      std::int64_t limit, std::ostream& out) {
    SLUICE_ASSIGN_OR_RETURN(auto db, detail::Database::open_existing(db_path.string()));
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

namespace {

// An archive file written and read back, whose records are not deleted yet.
struct WrittenArchive {
    AuditArchiveReport report;
    std::string last_hash;
    std::filesystem::path file;  // absolute: verify finds it whatever its working directory
};

// Writes the records up to `up_to_seq` to `archive_file` (beside its final name, synced,
// renamed: it exists whole or not at all), reads it back and checks it is exactly what was meant
// and reads as a chain, as verify will read it. Deletes nothing.
Result<WrittenArchive> write_archive(const std::filesystem::path& db_path, std::int64_t up_to_seq,
                                     const std::filesystem::path& archive_file) {
    std::error_code ec;
    if (std::filesystem::exists(archive_file, ec)) {
        return Status(StatusCode::kAlreadyExists,
                      "archive file " + archive_file.string() + " exists; choose a new name");
    }
    // Earlier archives may be kept offline: what is archived now is in the table, and is
    // checked either way.
    AuditVerifyOptions verify;
    verify.allow_missing_archives = true;
    SLUICE_ASSIGN_OR_RETURN(AuditVerifyReport verified, verify_audit_log(db_path, verify));
    if (!verified.ok) {
        return data_loss("audit log does not verify, refusing to archive: " + verified.problem);
    }
    SLUICE_ASSIGN_OR_RETURN(auto db, detail::Database::open(db_path.string()));
    SLUICE_ASSIGN_OR_RETURN(auto records, db->prepare(std::string(kSelectRecords) +
                                                      "WHERE seq <= ? ORDER BY seq"));
    records.bind(1, up_to_seq);
    std::string text;
    WrittenArchive archive;
    AuditArchiveReport& report = archive.report;
    Walk walk;
    while (true) {
        SLUICE_ASSIGN_OR_RETURN(bool row, records.step());
        if (!row) {
            break;
        }
        AuditRecord record = record_from_row(records);
        if (report.records == 0) {
            report.first_seq = record.seq;
            walk = Walk{record.seq, record.prev_hash, {}};
        }
        report.last_seq = record.seq;
        ++report.records;
        archive.last_hash = record.hash;
        text += audit_record_json(record, true) + "\n";
    }
    records.reset();
    if (report.records == 0) {
        return failed_precondition("no audit records at or below seq " +
                                   std::to_string(up_to_seq) + " to archive");
    }
    archive.file = std::filesystem::absolute(archive_file, ec);
    if (ec) {
        return io_error("archive file " + archive_file.string() + ": " + ec.message());
    }

    std::filesystem::path temporary = archive.file.string() + ".tmp";
    int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        return io_error("creating " + temporary.string() + ": " + std::strerror(errno));
    }
    bool written = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
                   ::fsync(fd) == 0;
    ::close(fd);
    if (!written || ::rename(temporary.c_str(), archive.file.c_str()) != 0) {
        ::unlink(temporary.c_str());
        return io_error("writing archive " + archive.file.string() + ": " +
                        std::strerror(errno));
    }

    // Read back what is on disk and check it before anything is deleted.
    SLUICE_ASSIGN_OR_RETURN(std::optional<std::string> back, read_file(archive.file));
    std::int64_t read_back = 0;
    if (!back || *back != text ||
        !walk_archive_text(*back, walk, Checkpoints(), read_back).first.empty()) {
        return data_loss("archive " + archive.file.string() +
                         " does not read back as written; nothing was deleted");
    }
    report.file_sha256 = detail::to_hex(detail::sha256(text));
    return archive;
}

// Deletes the archived records and records the archive, inside the caller's transaction on `db`.
// The records must still be the ones written: another archive may have taken them meanwhile.
Status purge_archived(detail::Database& db, const WrittenArchive& archive) {
    const AuditArchiveReport& report = archive.report;
    SLUICE_ASSIGN_OR_RETURN(auto still,
                            db.prepare("SELECT COUNT(*), MIN(seq), MAX(seq), (SELECT hash FROM "
                                       "audit_log WHERE seq = ?1) FROM audit_log WHERE seq <= ?1"));
    still.bind(1, report.last_seq);
    SLUICE_ASSIGN_OR_RETURN(bool row, still.step());
    if (!row || still.column_int(0) != report.records || still.column_int(1) != report.first_seq ||
        still.column_int(2) != report.last_seq || still.column_blob(3) != archive.last_hash) {
        return failed_precondition("audit records up to seq " + std::to_string(report.last_seq) +
                                   " changed while they were archived; nothing was deleted");
    }
    still.reset();
    SLUICE_RETURN_IF_ERROR(db.exec("INSERT INTO audit_purge_gate VALUES (" +
                                   std::to_string(report.last_seq) + ")"));
    SLUICE_ASSIGN_OR_RETURN(auto erase, db.prepare("DELETE FROM audit_log WHERE seq <= ?"));
    SLUICE_RETURN_IF_ERROR(erase.bind(1, report.last_seq).run());
    SLUICE_RETURN_IF_ERROR(db.exec("DELETE FROM audit_purge_gate"));
    SLUICE_ASSIGN_OR_RETURN(auto insert,
                            db.prepare("INSERT INTO audit_archives (first_seq, last_seq, "
                                       "last_hash, file, file_sha256, archived_at_ms) VALUES "
                                       "(?, ?, ?, ?, ?, ?)"));
    return insert.bind(1, report.first_seq)
        .bind(2, report.last_seq)
        .bind_blob(3, archive.last_hash.data(), archive.last_hash.size())
        .bind(4, archive.file.string())
        .bind(5, report.file_sha256)
        .bind(6, now_ms())
        .run();
}

// {"file":...,"file_sha256":...,"first_seq":...,"last_seq":...,"records":...}
std::string archive_details(const WrittenArchive& archive) {
    const AuditArchiveReport& report = archive.report;
    std::string details = "{\"file\":";
    detail::append_json_string(details, archive.file.string());
    details += ",\"file_sha256\":\"" + report.file_sha256 +
               "\",\"first_seq\":" + std::to_string(report.first_seq) +
               ",\"last_seq\":" + std::to_string(report.last_seq) +
               ",\"records\":" + std::to_string(report.records) + "}";
    return details;
}

}  // namespace

Result<AuditArchiveReport> archive_audit_log(const std::filesystem::path& db_path,
                                             std::int64_t up_to_seq,
                                             const std::filesystem::path& archive_file) {
    SLUICE_ASSIGN_OR_RETURN(WrittenArchive archive,
                            write_archive(db_path, up_to_seq, archive_file));
    SLUICE_ASSIGN_OR_RETURN(auto db, detail::Database::open(db_path.string()));
    SLUICE_ASSIGN_OR_RETURN(auto transaction, detail::Transaction::begin(*db));
    SLUICE_RETURN_IF_ERROR(purge_archived(*db, archive));
    SLUICE_RETURN_IF_ERROR(transaction->commit());
    return archive.report;
}

Result<AuditArchiveReport> archive_audit_log(const std::filesystem::path& db_path,
                                             std::int64_t up_to_seq,
                                             const std::filesystem::path& archive_file,
                                             AuditLog& log, AuditEvent event) {
    SLUICE_ASSIGN_OR_RETURN(WrittenArchive archive,
                            write_archive(db_path, up_to_seq, archive_file));
    event.details = archive_details(archive);
    // A companion: the deletion commits in the transaction that writes its record, or neither.
    SLUICE_RETURN_IF_ERROR(log.append(std::move(event), [archive](detail::Database& db) {
        return purge_archived(db, archive);
    }));
    return archive.report;
}

}  // namespace sluice::governance
