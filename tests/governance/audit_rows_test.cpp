// Multi-row inserts of audit records (governance/detail/audit_rows.h): every column of every row
// lands where it belongs whatever the count, the rows are grouped into the statements the header
// promises, and a statement that fails part-way through a batch takes back the whole batch.

#include <doctest/doctest.h>
#include <sqlite3.h>

#include <sstream>
#include <thread>

#include "governance/audit_log.h"
#include "governance/detail/audit_rows.h"
#include "governance/detail/sqlite.h"
#include "governance/store.h"
#include "test_dir.h"

using namespace sluice::governance;
using sluice::StatusCode;
using sluice::testing::TempDir;
using detail::AuditRowWriter;

namespace {

std::string numbered(std::string prefix, std::int64_t i) {
    prefix += std::to_string(i);
    return prefix;
}

// Every field differs from every other field and from the same field of other records, so that
// a value bound to the wrong column or row shows.
AuditEvent distinct_event(std::int64_t i) {
    AuditEvent e;
    e.time_us = 1'000'000 + i;
    e.principal = numbered("principal-", i);
    e.action = numbered("action-", i);
    e.securable = numbered("securable-", i);
    e.result = numbered("result-", i);
    e.request_id = numbered("request-", i);
    e.client = numbered("client-", i);
    e.token_id = numbered("token-", i);
    e.decided_by = numbered("decided-", i);
    e.details = numbered(R"({"n":)", i) + "}";
    return e;
}

AuditRowWriter::Digest digest_of(std::int64_t i, unsigned char salt) {
    AuditRowWriter::Digest digest{};
    for (std::size_t b = 0; b < digest.size(); ++b) {
        digest[b] = static_cast<unsigned char>((i * 31 + static_cast<std::int64_t>(b) + salt) & 0xff);
    }
    return digest;
}

std::string bytes(const AuditRowWriter::Digest& digest) {
    return {reinterpret_cast<const char*>(digest.data()), digest.size()};
}

// Statements a batch of `rows` takes: full statements of 64, then the rest 16, 4 and 1 at a time.
std::int64_t statements_for(std::size_t rows) {
    std::int64_t statements = 0;
    for (std::size_t size : AuditRowWriter::kRowsPerStatement) {
        statements += static_cast<std::int64_t>(rows / size);
        rows %= size;
    }
    return statements;
}

}  // namespace

TEST_CASE("audit rows: every count of records is inserted column for column, grouped as promised") {
    TempDir dir("audit-rows");
    const auto db_path = dir.path / "catalog.db";
    REQUIRE(Store::open(db_path).ok());
    auto db = detail::Database::open(db_path.string());
    REQUIRE(db.ok());
    AuditRowWriter writer(**db);
    std::int64_t seq = 0;
    std::int64_t statements = 0;
    // Empty, below and at each statement size, one past, and 191 = 2·64 + 3·16 + 3·4 + 3.
    for (std::size_t count : {0, 1, 3, 4, 5, 16, 21, 63, 64, 65, 128, 191}) {
        CAPTURE(count);
        std::vector<AuditEvent> events;
        for (std::size_t i = 0; i < count; ++i) {
            events.push_back(distinct_event(seq + 1 + static_cast<std::int64_t>(i)));
        }
        auto transaction = detail::Transaction::begin(**db);
        REQUIRE(transaction.ok());
        const std::int64_t first = seq + 1;
        for (const AuditEvent& e : events) {
            ++seq;
            REQUIRE(writer.add(seq, e, digest_of(seq, 1), digest_of(seq, 2)).ok());
        }
        REQUIRE(writer.flush().ok());
        REQUIRE((*transaction)->commit().ok());
        statements += statements_for(count);
        CHECK(writer.statements_run() == statements);

        auto read = (*db)->prepare(
            "SELECT seq, time_us, principal, action, securable, result, request_id, client, "
            "token_id, decided_by, details, prev_hash, hash FROM audit_log WHERE seq >= ? "
            "ORDER BY seq");
        REQUIRE(read.ok());
        read->bind(1, first);
        std::int64_t expected = first;
        for (;;) {
            auto row = read->step();
            REQUIRE(row.ok());
            if (!*row) {
                break;
            }
            const AuditEvent want = distinct_event(expected);
            CHECK(read->column_int(0) == expected);
            CHECK(read->column_int(1) == want.time_us);
            CHECK(read->column_text(2) == want.principal);
            CHECK(read->column_text(3) == want.action);
            CHECK(read->column_text(4) == want.securable);
            CHECK(read->column_text(5) == want.result);
            CHECK(read->column_text(6) == want.request_id);
            CHECK(read->column_text(7) == want.client);
            CHECK(read->column_text(8) == want.token_id);
            CHECK(read->column_text(9) == want.decided_by);
            CHECK(read->column_text(10) == want.details);
            CHECK(read->column_blob(11) == bytes(digest_of(expected, 1)));
            CHECK(read->column_blob(12) == bytes(digest_of(expected, 2)));
            ++expected;
        }
        CHECK(expected - first == static_cast<std::int64_t>(count));
    }
}

TEST_CASE("audit rows: a failing statement leaves nothing behind, and the writer starts clean") {
    TempDir dir("audit-rows-fail");
    const auto db_path = dir.path / "catalog.db";
    REQUIRE(Store::open(db_path).ok());
    auto db = detail::Database::open(db_path.string());
    REQUIRE(db.ok());
    // By request id: rows after the first of a batch go in without their seq (NEW.seq is -1).
    REQUIRE((*db)->exec("CREATE TRIGGER poison BEFORE INSERT ON audit_log "
                        "WHEN NEW.request_id = 'request-70' "
                        "BEGIN SELECT RAISE(ABORT, 'storage refuses'); END")
                .ok());
    AuditRowWriter writer(**db);
    std::vector<AuditEvent> events;
    for (std::int64_t i = 1; i <= 100; ++i) {
        events.push_back(distinct_event(i));
    }
    {
        auto transaction = detail::Transaction::begin(**db);
        REQUIRE(transaction.ok());
        sluice::Status failed;
        for (std::int64_t i = 1; i <= 100 && failed.ok(); ++i) {
            failed = writer.add(i, events[static_cast<std::size_t>(i - 1)], digest_of(i, 1),
                                digest_of(i, 2));
        }
        // Rows 1–64 went in one statement; 70 fails in the flush of the rest.
        REQUIRE(failed.ok());
        CHECK(writer.statements_run() == 1);
        failed = writer.flush();
        CHECK_FALSE(failed.ok());
        CHECK(failed.message().find("storage refuses") != std::string::npos);
        // The caller's transaction is not committed: its rollback takes the first 64 back too.
    }
    auto count = (*db)->prepare("SELECT COUNT(*) FROM audit_log");
    REQUIRE(count.ok());
    REQUIRE(*count->step());
    CHECK(count->column_int(0) == 0);
    count->reset();

    // After the failure nothing of the failed batch lingers in the writer.
    REQUIRE((*db)->exec("DROP TRIGGER poison").ok());
    auto transaction = detail::Transaction::begin(**db);
    REQUIRE(transaction.ok());
    REQUIRE(writer.add(1, events[0], digest_of(1, 1), digest_of(1, 2)).ok());
    REQUIRE(writer.flush().ok());
    REQUIRE((*transaction)->commit().ok());
    REQUIRE(*count->step());
    CHECK(count->column_int(0) == 1);
}

TEST_CASE("audit rows: a row that would not get its seq as the next rowid fails the statement") {
    TempDir dir("audit-rows-rowid");
    const auto db_path = dir.path / "catalog.db";
    REQUIRE(Store::open(db_path).ok());
    auto db = detail::Database::open(db_path.string());
    REQUIRE(db.ok());
    AuditRowWriter writer(**db);
    std::vector<AuditEvent> events;
    for (std::int64_t i = 1; i <= 70; ++i) {
        events.push_back(distinct_event(i));
    }
    {
        auto transaction = detail::Transaction::begin(**db);
        REQUIRE(transaction.ok());
        for (std::int64_t i = 1; i <= 64; ++i) {
            REQUIRE(writer.add(i, events[static_cast<std::size_t>(i - 1)], digest_of(i, 1),
                               digest_of(i, 2))
                        .ok());
        }
        REQUIRE(writer.statements_run() == 1);
        // Something else writes a row past the writer's last one inside the same transaction:
        // the rows after 64 would become 1001, 1002... and the writer must say so rather than
        // let records stand under the wrong seq.
        REQUIRE((*db)->exec("INSERT INTO audit_log SELECT 1000, time_us, principal, action, "
                            "securable, result, request_id, client, token_id, decided_by, "
                            "details, prev_hash, hash FROM audit_log WHERE seq = 64")
                    .ok());
        for (std::int64_t i = 65; i <= 70; ++i) {
            REQUIRE(writer.add(i, events[static_cast<std::size_t>(i - 1)], digest_of(i, 1),
                               digest_of(i, 2))
                        .ok());
        }
        sluice::Status flushed = writer.flush();
        CHECK(flushed.code() == StatusCode::kInternal);
        CHECK(flushed.message().find("audit record 68 was stored as row 1004") !=
              std::string::npos);
        // (Rows 65-68 went in one statement of 4.) Not committed: the rollback takes it all back.
    }
    auto count = (*db)->prepare("SELECT COUNT(*) FROM audit_log");
    REQUIRE(count.ok());
    REQUIRE(*count->step());
    CHECK(count->column_int(0) == 0);

    // After clear() the next batch names its first seq again: rows land where they should
    // even where the table's largest rowid is not the one before them.
    writer.clear();
    auto transaction = detail::Transaction::begin(**db);
    REQUIRE(transaction.ok());
    REQUIRE(writer.add(1001, events[0], digest_of(1001, 1), digest_of(1001, 2)).ok());
    REQUIRE(writer.add(1002, events[1], digest_of(1002, 1), digest_of(1002, 2)).ok());
    REQUIRE(writer.flush().ok());
    REQUIRE((*transaction)->commit().ok());
    auto seqs = (*db)->prepare("SELECT seq FROM audit_log WHERE seq > 1000 ORDER BY seq");
    REQUIRE(seqs.ok());
    std::vector<std::int64_t> found;
    while (*seqs->step()) {
        found.push_back(seqs->column_int(0));
    }
    CHECK(found == std::vector<std::int64_t>{1001, 1002});
}

TEST_CASE("audit log: a queued batch larger than one statement is one gapless chain; a failure "
          "mid-batch writes none of it until storage recovers") {
    TempDir dir("audit-rows-log");
    const auto db_path = dir.path / "catalog.db";
    const auto key_path = dir.path / "audit_signing.key";
    REQUIRE(Store::open(db_path).ok());
    auto raw = detail::Database::open(db_path.string());
    REQUIRE(raw.ok());
    // Refuses the 100th record of the batch: after the first 64-row statement has gone in.
    REQUIRE((*raw)->exec("CREATE TRIGGER poison BEFORE INSERT ON audit_log "
                         "WHEN NEW.request_id = 'request-100' "
                         "BEGIN SELECT RAISE(ABORT, 'storage refuses'); END")
                .ok());
    AuditLogOptions options;
    options.checkpoint_every = 50;
    options.acknowledge = AuditAcknowledge::kQueued;
    options.gather = std::chrono::hours(1);  // nothing commits unless someone waits
    auto log = AuditLog::open(db_path, key_path, options);
    REQUIRE(log.ok());
    constexpr std::int64_t kRecords = 191;
    for (std::int64_t i = 1; i <= kRecords; ++i) {
        REQUIRE((*log)->append(distinct_event(i)).ok());
    }
    auto count = [&] {
        auto statement = (*raw)->prepare("SELECT COUNT(*) FROM audit_log");
        REQUIRE(statement.ok());
        REQUIRE(*statement->step());
        return statement->column_int(0);
    };
    // sync() commits the whole queue in one batch, which fails: none of it is written.
    CHECK((*log)->sync().code() == StatusCode::kUnavailable);
    CHECK(count() == 0);
    CHECK((*log)->queued() == static_cast<std::size_t>(kRecords));

    // Storage recovers: the writer's retry writes the batch, in order.
    REQUIRE((*raw)->exec("DROP TRIGGER poison").ok());
    while (!(*log)->sync().ok()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));  // the ctest timeout ends a hang
    }
    CHECK(count() == kRecords);
    log->reset();

    auto key = audit_public_key(key_path);
    REQUIRE(key.ok());
    auto report = verify_audit_log(db_path, *key);
    REQUIRE(report.ok());
    CHECK(report->ok);
    CHECK(report->records == kRecords);
    CHECK(report->checkpoints >= 1);  // the batch crossed 50, 100 and 150: its head is signed
    // Each record holds its own fields, in the order appended.
    std::ostringstream lines;
    auto exported = export_audit_log(db_path, 0, 0, lines);
    REQUIRE(exported.ok());
    CHECK(*exported == kRecords);
    std::istringstream in(lines.str());
    std::string line;
    for (std::int64_t i = 1; std::getline(in, line); ++i) {
        CAPTURE(i);
        CHECK(line.find("\"request_id\":\"" + numbered("request-", i) + "\"") != std::string::npos);
        CHECK(line.find("\"principal\":\"" + numbered("principal-", i) + "\"") != std::string::npos);
        CHECK(line.find("\"seq\":" + std::to_string(i) + ",") != std::string::npos);
    }
}
