// The audit log's writer thread: order and chain under concurrent appenders, acknowledgement on
// queueing, sync(), the full queue, write failures, close, and a killed process.

#include <doctest/doctest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <thread>

#include "governance/audit_log.h"
#include "governance/store.h"
#include "test_dir.h"

using namespace sluice::governance;
using sluice::StatusCode;
using sluice::testing::TempDir;

namespace {

struct Site {
    TempDir dir{"audit-writer"};
    std::filesystem::path db_path = dir.path / "catalog.db";
    std::filesystem::path key_path = dir.path / "audit_signing.key";

    Site() { REQUIRE(Store::open(db_path).ok()); }

    std::unique_ptr<AuditLog> open(AuditLogOptions options) const {
        auto log = AuditLog::open(db_path, key_path, options);
        REQUIRE(log.ok());
        return std::move(*log);
    }

    // request_id of every record, in seq order; seq must run 1, 2, 3... without gaps.
    std::vector<std::string> request_ids() const {
        sqlite3* raw = nullptr;
        REQUIRE(sqlite3_open(db_path.c_str(), &raw) == SQLITE_OK);
        sqlite3_stmt* stmt = nullptr;
        REQUIRE(sqlite3_prepare_v2(raw, "SELECT seq, request_id FROM audit_log ORDER BY seq", -1,
                                   &stmt, nullptr) == SQLITE_OK);
        std::vector<std::string> ids;
        while (sqlite3_step(stmt) == SQLITE_ROW) {
            CHECK(sqlite3_column_int64(stmt, 0) == static_cast<std::int64_t>(ids.size()) + 1);
            ids.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(stmt, 1)));
        }
        sqlite3_finalize(stmt);
        sqlite3_close(raw);
        return ids;
    }

    AuditVerifyReport verify() const {
        auto key = audit_public_key(key_path);
        REQUIRE(key.ok());
        auto report = verify_audit_log(db_path, *key);
        REQUIRE(report.ok());
        return *report;
    }
};

int exec(const std::filesystem::path& db, const std::string& sql) {
    sqlite3* raw = nullptr;
    REQUIRE(sqlite3_open(db.c_str(), &raw) == SQLITE_OK);
    int rc = sqlite3_exec(raw, sql.c_str(), nullptr, nullptr, nullptr);
    sqlite3_close(raw);
    return rc;
}

// prefix + number (appended, not operator+: GCC 12 warns falsely on "literal" + std::string).
std::string named(std::string prefix, std::size_t i) {
    prefix += std::to_string(i);
    return prefix;
}
std::string named(std::string prefix, int i) { return named(std::move(prefix), static_cast<std::size_t>(i)); }

AuditEvent event(const std::string& request_id, const std::string& action = "authorize:SELECT") {
    AuditEvent e;
    e.principal = "alice";
    e.action = action;
    e.securable = "table:main.s.t";
    e.result = "allow";
    e.request_id = request_id;
    e.client = "127.0.0.1";
    e.token_id = "tok_1";
    e.decided_by = "grant SELECT on catalog 'main'";
    return e;
}

AuditLogOptions queued(std::chrono::microseconds gather = std::chrono::microseconds(2000)) {
    AuditLogOptions options;
    options.checkpoint_every = 100;
    options.acknowledge = AuditAcknowledge::kQueued;
    options.gather = gather;
    return options;
}

template <typename Condition>
void wait_until(Condition condition) {
    // No timed assertion: the ctest timeout ends a hang.
    while (!condition()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
}

}  // namespace

TEST_CASE("queued appends from many threads: one gapless chain, each thread's records in order") {
    Site site;
    auto log = site.open(queued());
    constexpr int kThreads = 8;
    constexpr int kEach = 400;
    {
        std::vector<std::jthread> threads;
        for (int t = 0; t < kThreads; ++t) {
            threads.emplace_back([&log, t] {
                for (int i = 0; i < kEach; ++i) {
                    REQUIRE(log->append(event(named(named("", t) + ":", i))).ok());
                }
            });
        }
    }
    REQUIRE(log->sync().ok());
    CHECK(log->queued() == 0);
    CHECK(log->appended() == kThreads * kEach);
    auto ids = site.request_ids();  // checks seq is gapless
    REQUIRE(ids.size() == static_cast<std::size_t>(kThreads * kEach));
    std::map<std::string, int> next;  // thread -> next index expected
    for (const std::string& id : ids) {
        std::string thread = id.substr(0, id.find(':'));
        int index = std::stoi(id.substr(id.find(':') + 1));
        CHECK(index == next[thread]);
        next[thread] = index + 1;
    }
    log.reset();
    auto report = site.verify();
    CHECK(report.ok);
    CHECK(report.records == kThreads * kEach);
    CHECK(report.checkpoints >= 2);  // one per batch that crosses a multiple of 100, and the head
}

TEST_CASE("deferred records from many threads stay beside their request's next record") {
    // Appends are reused after their commit and deferred records wait in numbered slots: a
    // reused append must carry none of its earlier records, and a stale ticket (its slot now
    // another request's) must flush nothing.
    for (AuditAcknowledge acknowledge : {AuditAcknowledge::kQueued, AuditAcknowledge::kDurable}) {
        CAPTURE(static_cast<int>(acknowledge));
        Site site;
        AuditLogOptions options = queued();
        options.acknowledge = acknowledge;
        auto log = site.open(options);
        constexpr int kThreads = 6;
        constexpr int kEach = 300;
        {
            std::vector<std::jthread> threads;
            for (int t = 0; t < kThreads; ++t) {
                threads.emplace_back([&log, t] {
                    std::uint64_t stale = 0;
                    for (int i = 0; i < kEach; ++i) {
                        const std::string id = named(named("", t) + ":", i);
                        const std::uint64_t ticket = log->defer(event(id, "authenticate"));
                        REQUIRE(ticket != 0);
                        REQUIRE(ticket != stale);
                        REQUIRE(log->flush(stale).ok());  // already queued: nothing to do
                        if (i % 3 == 2) {
                            REQUIRE(log->flush(ticket).ok());  // no later record
                        } else {
                            AuditEvent next = event(id);
                            next.deferred_ticket = ticket;
                            REQUIRE(log->append(next).ok());
                        }
                        stale = ticket;
                    }
                });
            }
        }
        REQUIRE(log->sync().ok());
        CHECK(log->deferred_count() == 0);
        const std::size_t expected = kThreads * (kEach + (kEach - kEach / 3));
        CHECK(log->appended() == static_cast<std::int64_t>(expected));
        log.reset();

        sqlite3* raw = nullptr;
        REQUIRE(sqlite3_open(site.db_path.c_str(), &raw) == SQLITE_OK);
        sqlite3_stmt* stmt = nullptr;
        REQUIRE(sqlite3_prepare_v2(raw, "SELECT request_id, action FROM audit_log ORDER BY seq",
                                   -1, &stmt, nullptr) == SQLITE_OK);
        std::vector<std::pair<std::string, std::string>> rows;
        while (sqlite3_step(stmt) == SQLITE_ROW) {
            rows.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0)),
                              reinterpret_cast<const char*>(sqlite3_column_text(stmt, 1)));
        }
        sqlite3_finalize(stmt);
        sqlite3_close(raw);
        REQUIRE(rows.size() == expected);
        std::map<std::string, int> next;  // thread -> next request expected
        for (std::size_t row = 0; row < rows.size(); ++row) {
            const auto& [id, action] = rows[row];
            REQUIRE(action == "authenticate");
            const std::string thread = id.substr(0, id.find(':'));
            const int index = std::stoi(id.substr(id.find(':') + 1));
            CHECK(index == next[thread]);
            next[thread] = index + 1;
            if (index % 3 != 2) {
                // Its next record follows at once: same request, same transaction.
                REQUIRE(row + 1 < rows.size());
                CHECK(rows[row + 1].first == id);
                CHECK(rows[row + 1].second == "authorize:SELECT");
                ++row;
            }
        }
        auto report = site.verify();
        CHECK(report.ok);
        CHECK(report.records == static_cast<std::int64_t>(expected));
    }
}

TEST_CASE("a queued append returns before its commit; sync() and close write it") {
    Site site;
    // The writer gathers for an hour: nothing commits unless someone waits.
    auto log = site.open(queued(std::chrono::hours(1)));
    for (int i = 0; i < 50; ++i) {
        REQUIRE(log->append(event(named("q", i))).ok());
    }
    CHECK(log->queued() == 50);
    CHECK(site.request_ids().empty());
    REQUIRE(log->sync().ok());  // ends the gathering
    CHECK(log->queued() == 0);
    CHECK(site.request_ids().size() == 50);

    for (int i = 50; i < 80; ++i) {
        REQUIRE(log->append(event(named("q", i))).ok());
    }
    CHECK(log->queued() == 30);
    log.reset();  // closing writes what is queued and signs the head
    auto ids = site.request_ids();
    REQUIRE(ids.size() == 80);
    CHECK(ids.back() == "q79");
    auto report = site.verify();
    CHECK(report.ok);
    CHECK(report.last_seq == 80);
}

TEST_CASE("a durable append and a companion append wait for their commit even while gathering") {
    Site site;
    AuditLogOptions options = queued(std::chrono::hours(1));
    auto log = site.open(options);
    REQUIRE(log->append(event("queued")).ok());
    // A companion append waits: it and the record queued before it are committed.
    REQUIRE(log->append(event("with-companion"), [](detail::Database&) { return sluice::Status(); }).ok());
    CHECK(site.request_ids() == std::vector<std::string>{"queued", "with-companion"});
    log.reset();

    options.acknowledge = AuditAcknowledge::kDurable;
    auto durable = site.open(options);
    REQUIRE(durable->append(event("durable")).ok());
    CHECK(site.request_ids().size() == 3);
}

TEST_CASE("durable appends from many threads commit themselves: one gapless chain, each in order") {
    Site site;
    AuditLogOptions options = queued();
    options.acknowledge = AuditAcknowledge::kDurable;
    auto log = site.open(options);
    constexpr int kThreads = 8;
    constexpr int kEach = 200;
    {
        std::vector<std::jthread> threads;
        for (int t = 0; t < kThreads; ++t) {
            threads.emplace_back([&log, t] {
                for (int i = 0; i < kEach; ++i) {
                    REQUIRE(log->append(event(named(named("", t) + ":", i))).ok());
                }
            });
        }
    }
    // Every append returned after its commit: nothing is left for the writer.
    CHECK(log->queued() == 0);
    CHECK(log->appended() == kThreads * kEach);
    auto ids = site.request_ids();
    REQUIRE(ids.size() == static_cast<std::size_t>(kThreads * kEach));
    std::map<std::string, int> next;
    for (const std::string& id : ids) {
        std::string thread = id.substr(0, id.find(':'));
        int index = std::stoi(id.substr(id.find(':') + 1));
        CHECK(index == next[thread]);
        next[thread] = index + 1;
    }
    log.reset();
    CHECK(site.verify().ok);
}

TEST_CASE("a waiting append commits what queued before it, in order, while the writer gathers") {
    Site site;
    auto log = site.open(queued(std::chrono::hours(1)));
    std::vector<std::string> expected;
    for (int round = 0; round < 3; ++round) {
        for (int i = 0; i < 20; ++i) {
            expected.push_back(named(named("r", round) + "-", i));
            REQUIRE(log->append(event(expected.back())).ok());
        }
        expected.push_back(named("companion", round));
        REQUIRE(log->append(event(expected.back()), [](detail::Database&) {
                       return sluice::Status();
                   }).ok());
        // Committed before the append returned, though the writer gathers for an hour.
        CHECK(log->queued() == 0);
        CHECK(site.request_ids() == expected);
    }
    log.reset();
    CHECK(site.verify().ok);
}

TEST_CASE("a full queue blocks appenders until the writer makes room; nothing is dropped") {
    Site site;
    AuditLogOptions options = queued(std::chrono::microseconds(0));
    options.queue_capacity = 8;
    auto log = site.open(options);
    // Another connection holds the write lock: the writer takes a batch and stalls on it.
    sqlite3* blocker = nullptr;
    REQUIRE(sqlite3_open(site.db_path.c_str(), &blocker) == SQLITE_OK);
    REQUIRE(sqlite3_exec(blocker, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) == SQLITE_OK);

    std::atomic<int> returned{0};
    std::jthread appender([&] {
        for (int i = 0; i < 40; ++i) {
            REQUIRE(log->append(event(named("full", i))).ok());
            returned.fetch_add(1);
        }
    });
    // The first records go to the stalled writer, then the queue fills to its capacity.
    wait_until([&] { return log->queued() >= 9; });
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    const int before = returned.load();
    CHECK(before < 40);
    CHECK(log->queued() <= static_cast<std::size_t>(before));
    // Still held: the appender cannot get past a full queue while the writer is stalled.
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    CHECK(returned.load() == before);

    REQUIRE(sqlite3_exec(blocker, "ROLLBACK", nullptr, nullptr, nullptr) == SQLITE_OK);
    sqlite3_close(blocker);
    appender.join();
    REQUIRE(log->sync().ok());
    auto ids = site.request_ids();
    REQUIRE(ids.size() == 40);
    for (int i = 0; i < 40; ++i) {
        CHECK(ids[static_cast<std::size_t>(i)] == named("full", i));
    }
}

TEST_CASE("a failing write: waiting appends fail, new ones are refused, queued records are retried") {
    Site site;
    // A trigger stands in for storage that refuses writes, for records marked "poison".
    REQUIRE(exec(site.db_path, "CREATE TRIGGER poison BEFORE INSERT ON audit_log "
                               "WHEN NEW.action = 'poison' "
                               "BEGIN SELECT RAISE(ABORT, 'storage refuses'); END") == SQLITE_OK);
    SUBCASE("durable: the appender hears of it, and the next append tries again") {
        AuditLogOptions options;
        auto log = site.open(options);
        REQUIRE(log->append(event("before")).ok());
        auto failed = log->append(event("bad", "poison"));
        CHECK_FALSE(failed.ok());
        CHECK(failed.message().find("storage refuses") != std::string::npos);
        REQUIRE(log->append(event("after")).ok());
        CHECK(site.request_ids() == std::vector<std::string>{"before", "after"});
    }
    SUBCASE("queued: kept and retried in order until storage accepts it, refusing new records meanwhile") {
        auto log = site.open(queued(std::chrono::microseconds(0)));
        REQUIRE(log->append(event("before")).ok());
        REQUIRE(log->append(event("bad", "poison")).ok());  // acknowledged on queueing
        std::vector<std::string> accepted = {"before", "bad"};
        // Appends go on being accepted until the writer meets the failure; then they are refused.
        int i = 0;
        for (;; ++i) {
            auto status = log->append(event(named("later", i)));
            if (!status.ok()) {
                CHECK(status.code() == StatusCode::kUnavailable);
                CHECK(status.message().find("storage refuses") != std::string::npos);
                break;
            }
            accepted.push_back(named("later", i));
        }
        CHECK(log->sync().code() == StatusCode::kUnavailable);
        // Storage recovers: the kept records are written, in their order, and appends resume.
        REQUIRE(exec(site.db_path, "DROP TRIGGER poison") == SQLITE_OK);
        wait_until([&] { return log->queued() == 0 && log->sync().ok(); });
        REQUIRE(log->append(event("recovered")).ok());
        REQUIRE(log->sync().ok());
        accepted.push_back("recovered");
        CHECK(site.request_ids() == accepted);
        log.reset();
        CHECK(site.verify().ok);
    }
}

TEST_CASE("the background thread copies the WAL into catalog.db while the log is open") {
    Site site;
    auto log = site.open(queued(std::chrono::microseconds(0)));
    for (int i = 0; i < 200; ++i) {
        REQUIRE(log->append(event(named("wal", i))).ok());
    }
    REQUIRE(log->sync().ok());
    // SQLite's wal-index (catalog.db-shm, native byte order): the WAL's last valid frame
    // (mxFrame, offset 16) and how many of its frames have been copied into the database
    // (nBackfill, offset 96). Nothing else writes now, so the copy must catch up.
    auto frames = [&] {
        std::ifstream shm(site.dir.path / "catalog.db-shm", std::ios::binary);
        std::array<char, 100> header{};
        shm.read(header.data(), header.size());
        std::uint32_t last = 0;
        std::uint32_t copied = 0;
        std::memcpy(&last, header.data() + 16, sizeof(last));
        std::memcpy(&copied, header.data() + 96, sizeof(copied));
        return std::pair{last, copied};
    };
    CHECK(frames().first > 0);
    wait_until([&] { return frames().second == frames().first; });
    log.reset();
    CHECK(site.request_ids().size() == 200);
}

TEST_CASE("tampering with records written through the queue is still detected") {
    Site site;
    {
        auto log = site.open(queued());
        for (int i = 0; i < 30; ++i) {
            REQUIRE(log->append(event(named("t", i))).ok());
        }
    }
    REQUIRE(site.verify().ok);
    REQUIRE(exec(site.db_path, "DROP TRIGGER audit_log_no_update; "
                               "UPDATE audit_log SET result = 'deny' WHERE seq = 17") == SQLITE_OK);
    auto report = site.verify();
    CHECK_FALSE(report.ok);
    CHECK(report.first_bad_seq == 17);
}

// A child process appends from `threads` threads as fast as it can, thread t's i-th record
// named name(t, i), and reports each acknowledged record (thread, index) on a pipe; the parent
// kills it (SIGKILL) once `kills_after` records were acknowledged and returns what was
// acknowledged. With several threads, durable appends commit each other's records
// (leader/follower), so this exercises that path.
std::vector<std::pair<int, int>> kill_threads_while_appending(
    const Site& site, AuditLogOptions options, int threads, int kills_after,
    const std::function<std::string(int, int)>& name =
        [](int t, int i) { return named(named("", t) + ":", i); }) {
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        ::close(fds[0]);
        auto log = AuditLog::open(site.db_path, site.key_path, options);
        if (!log.ok()) {
            ::_exit(2);
        }
        std::vector<std::thread> appenders;
        for (int t = 0; t < threads; ++t) {
            appenders.emplace_back([&log, &name, t, fd = fds[1]] {
                for (int i = 0;; ++i) {
                    if (!(*log)->append(event(name(t, i))).ok()) {
                        ::_exit(3);
                    }
                    // Two ints, well under PIPE_BUF: each report arrives whole.
                    int report[2] = {t, i};
                    if (::write(fd, report, sizeof(report)) != sizeof(report)) {
                        ::_exit(4);
                    }
                }
            });
        }
        for (auto& appender : appenders) {
            appender.join();
        }
        ::_exit(5);
    }
    ::close(fds[1]);
    std::vector<std::pair<int, int>> acknowledged;
    std::string pending;
    auto take = [&](bool until_killed) {
        char buffer[4096];
        while (!until_killed || static_cast<int>(acknowledged.size()) < kills_after) {
            ssize_t n = ::read(fds[0], buffer, sizeof(buffer));
            if (n <= 0) {
                return;
            }
            pending.append(buffer, static_cast<std::size_t>(n));
            while (pending.size() >= 2 * sizeof(int)) {
                int report[2];
                std::memcpy(report, pending.data(), sizeof(report));
                pending.erase(0, sizeof(report));
                acknowledged.emplace_back(report[0], report[1]);
            }
        }
    };
    take(true);
    REQUIRE(static_cast<int>(acknowledged.size()) >= kills_after);
    REQUIRE(::kill(child, SIGKILL) == 0);
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    CHECK(WIFSIGNALED(status));
    take(false);  // acknowledged before the kill, read after it
    ::close(fds[0]);
    return acknowledged;
}

// One appending thread whose records are named k0, k1, ...: kills the child after 3,000
// acknowledged records and returns what the database kept.
std::vector<std::string> kill_while_appending(const Site& site, AuditLogOptions options,
                                              int& acknowledged) {
    acknowledged = static_cast<int>(
        kill_threads_while_appending(site, options, 1, 3000,
                                     [](int, int i) { return named("k", i); })
            .size());
    return site.request_ids();
}

TEST_CASE("killed mid-stream: durable keeps every acknowledged record, queued loses at most its bound") {
    SUBCASE("durable") {
        Site site;
        AuditLogOptions options;
        options.checkpoint_every = 500;
        int acknowledged = 0;
        auto ids = kill_while_appending(site, options, acknowledged);
        // Every acknowledged record is there, in order; at most the one in flight besides.
        REQUIRE(ids.size() >= static_cast<std::size_t>(acknowledged));
        CHECK(ids.size() <= static_cast<std::size_t>(acknowledged) + 1);
        for (std::size_t i = 0; i < ids.size(); ++i) {
            CHECK(ids[i] == named("k", i));
        }
        auto report = site.verify();  // the unsigned tail after the last checkpoint still chains
        CHECK(report.ok);
    }
    SUBCASE("durable, many threads committing for each other") {
        Site site;
        AuditLogOptions options;
        options.checkpoint_every = 500;
        constexpr int kThreads = 6;
        auto acknowledged = kill_threads_while_appending(site, options, kThreads, 3000);
        auto ids = site.request_ids();  // checks seq is gapless
        std::map<int, int> kept;        // thread -> records of it in the log
        for (const std::string& id : ids) {
            int thread = std::stoi(id.substr(0, id.find(':')));
            int index = std::stoi(id.substr(id.find(':') + 1));
            CHECK(index == kept[thread]);  // each thread's records in order, without holes
            kept[thread] = index + 1;
        }
        // Every acknowledged record is there; besides them at most one in flight per thread.
        for (const auto& [thread, index] : acknowledged) {
            CHECK(index < kept[thread]);
        }
        CHECK(ids.size() >= acknowledged.size());
        CHECK(ids.size() <= acknowledged.size() + kThreads);
        CHECK(site.verify().ok);
    }
    SUBCASE("queued") {
        // A short gathering interval and the default one: the bound is the queue's either way.
        for (auto gather : {std::chrono::microseconds(2000), AuditLogOptions{}.gather}) {
            INFO("gather " << gather.count() << " us");
            Site site;
            AuditLogOptions options = queued(gather);
            options.checkpoint_every = 500;
            options.queue_capacity = 256;
            int acknowledged = 0;
            auto ids = kill_while_appending(site, options, acknowledged);
            // What is kept is a prefix of what was acknowledged, in order, without holes; what
            // is lost is at most the queue and the batch being written.
            for (std::size_t i = 0; i < ids.size(); ++i) {
                CHECK(ids[i] == named("k", i));
            }
            CHECK(ids.size() + options.queue_capacity + 512 >=
                  static_cast<std::size_t>(acknowledged));
            CHECK(site.verify().ok);
        }
    }
}

namespace {

// Records committed so far, as a fresh reader of the database sees them.
std::int64_t committed_records(const Site& site) {
    sqlite3* raw = nullptr;
    REQUIRE(sqlite3_open(site.db_path.c_str(), &raw) == SQLITE_OK);
    sqlite3_stmt* stmt = nullptr;
    REQUIRE(sqlite3_prepare_v2(raw, "SELECT COUNT(*) FROM audit_log", -1, &stmt, nullptr) ==
            SQLITE_OK);
    REQUIRE(sqlite3_step(stmt) == SQLITE_ROW);
    const std::int64_t count = sqlite3_column_int64(stmt, 0);
    sqlite3_finalize(stmt);
    sqlite3_close(raw);
    return count;
}

// Whether `records` become committed without anyone waiting for them. The writer commits
// them within its gathering interval (2 ms here) and one commit; the deadline is hundreds of
// times that, so only a writer that stopped committing misses it.
bool committed_without_waiter(const Site& site, std::int64_t records) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (committed_records(site) < records) {
        if (std::chrono::steady_clock::now() > deadline) {
            return false;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return true;
}

}  // namespace

TEST_CASE("queued records are committed by the writer after a waiter took the writer's work") {
    // A queued append wakes the idle writer; before the writer gets the lock, a waiter (sync()
    // or an append that waits) commits the queue, that record included. The writer must go back
    // to sleep ready to be woken again: records queued afterwards, with nobody waiting for
    // them, are the writer's to commit within its gathering interval.
    Site site;
    auto log = site.open(queued());
    std::int64_t records = 0;
    for (int round = 0; round < 200; ++round) {
        CAPTURE(round);
        REQUIRE(log->append(event(named("woke", round))).ok());
        if (round % 2 == 0) {
            REQUIRE(log->sync().ok());
        } else {
            REQUIRE(log->append(event(named("waits", round)), [](detail::Database&) {
                           return sluice::Status();
                       }).ok());
            ++records;
        }
        REQUIRE(log->append(event(named("later", round))).ok());
        records += 2;
        REQUIRE(committed_without_waiter(site, records));
    }
    log.reset();
    CHECK(site.verify().ok);
}

TEST_CASE("queued records from threads mixing waits and syncs are all committed without a waiter") {
    // Random interleavings of queued appends, waiting appends and sync() from several threads;
    // afterwards nobody waits, and every record must still be committed by the writer.
    Site site;
    auto log = site.open(queued());
    constexpr int kThreads = 4;
    constexpr int kEach = 300;
    std::atomic<std::int64_t> records{0};
    for (int round = 0; round < 5; ++round) {
        CAPTURE(round);
        {
            std::vector<std::jthread> threads;
            for (int t = 0; t < kThreads; ++t) {
                threads.emplace_back([&, t] {
                    std::mt19937 random(static_cast<unsigned>(round * kThreads + t));
                    for (int i = 0; i < kEach; ++i) {
                        const std::string id = named(named(named("", round) + ":", t) + ":", i);
                        switch (random() % 8) {
                            case 0:
                                REQUIRE(log->sync().ok());
                                break;
                            case 1:
                                REQUIRE(log->append(event(id), [](detail::Database&) {
                                               return sluice::Status();
                                           }).ok());
                                records.fetch_add(1);
                                break;
                            default:
                                REQUIRE(log->append(event(id)).ok());
                                records.fetch_add(1);
                        }
                        if (random() % 16 == 0) {
                            std::this_thread::yield();
                        }
                    }
                });
            }
        }
        CHECK(committed_without_waiter(site, records.load()));
    }
    log.reset();
    auto report = site.verify();
    CHECK(report.ok);
    CHECK(report.records == records.load());
}
