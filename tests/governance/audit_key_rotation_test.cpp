#include "governance/audit_key_rotation.h"

#include <doctest/doctest.h>

#include <fstream>

#include "governance/audit_log.h"
#include "governance/detail/crypto.h"
#include "governance/detail/key_rotation_record.h"
#include "governance/detail/sqlite.h"
#include "governance/governance.h"
#include "governance/store.h"
#include "test_dir.h"

using namespace sluice::governance;
using sluice::Result;
using sluice::StatusCode;
using sluice::testing::TempDir;

namespace {

AuditEvent numbered_event(std::int64_t i) {
    AuditEvent e;
    e.principal = "alice";
    e.action = "authorize:SELECT";
    e.securable = "table:main.s.t" + std::to_string(i);
    e.result = "allow";
    e.request_id = "req_" + std::to_string(i);
    return e;
}

// A data directory's catalog and key, written by the real writer (interval 4).
struct RotationFixture {
    TempDir dir{"rotation"};
    std::filesystem::path db_path = dir.path / kCatalogFile;
    std::filesystem::path key_path = dir.path / kSigningKeyFile;
    std::int64_t written = 0;

    RotationFixture() { REQUIRE(Store::open(db_path).ok()); }

    void append(std::int64_t records) {
        auto log = AuditLog::open(db_path, key_path, AuditLogOptions{4});
        REQUIRE(log.ok());
        for (std::int64_t i = 0; i < records; ++i) {
            REQUIRE((*log)->append(numbered_event(++written)).ok());
        }
    }

    // Appends one event through a writer that signs with `key` (as someone holding that key
    // would), bypassing the data directory's key file.
    void append_signed_by(std::unique_ptr<detail::Ed25519Key> key, AuditEvent event) {
        auto db = detail::Database::open_existing(db_path.string());
        REQUIRE(db.ok());
        AuditLog log(std::move(*db), std::move(key), AuditLogOptions{4});
        REQUIRE(log.append(std::move(event)).ok());
        ++written;
    }

    Result<AuditKeyRotation> rotate(bool previous_key_lost = false) {
        AuditKeyRotationOptions options;
        options.previous_key_lost = previous_key_lost;
        options.principal = "local:ops";
        options.client = "local:ops";
        auto rotation = rotate_audit_signing_key(db_path, key_path, options);
        if (rotation.ok()) {
            ++written;
        }
        return rotation;
    }

    std::string public_key() {
        auto key = audit_public_key(key_path);
        REQUIRE(key.ok());
        return *key;
    }

    AuditVerifyReport verify(std::optional<std::string> trusted) {
        auto report = verify_audit_log(db_path, std::move(trusted));
        REQUIRE(report.ok());
        return *report;
    }
    AuditVerifyReport verify() { return verify(public_key()); }
};

AuditEvent rotation_event(const detail::KeyRotationDetails& details) {
    AuditEvent e;
    e.principal = "mallory";
    e.action = std::string(kAuditKeyRotationAction);
    e.securable = "metastore:";
    e.result = "ok";
    e.details = detail::key_rotation_details_json(details);
    return e;
}

std::unique_ptr<detail::Ed25519Key> new_key() {
    auto key = detail::Ed25519Key::generate();
    REQUIRE(key.ok());
    return std::move(*key);
}

}  // namespace

TEST_CASE("a writer refuses to make a signing key for a log that holds records") {
    RotationFixture f;
    f.append(5);
    REQUIRE(std::filesystem::remove(f.key_path));
    auto reopened = AuditLog::open(f.db_path, f.key_path, AuditLogOptions{4});
    REQUIRE(reopened.status().code() == StatusCode::kFailedPrecondition);
    INFO(reopened.status().message());
    CHECK(reopened.status().message().find("audit signing key '" + f.key_path.string() +
                                           "' does not exist") != std::string::npos);
    CHECK(reopened.status().message().find("sluice audit rotate-key --data-dir " +
                                           f.dir.path.string() + " --previous-key-lost") !=
          std::string::npos);
    CHECK_FALSE(std::filesystem::exists(f.key_path));

    // An empty log has nothing a key vouched for: its first writer makes one.
    RotationFixture empty;
    auto fresh = AuditLog::open(empty.db_path, empty.key_path, AuditLogOptions{4});
    REQUIRE(fresh.ok());
    CHECK(std::filesystem::exists(empty.key_path));
}

TEST_CASE("a rotation with the previous key held hands over to a new key that verify follows") {
    RotationFixture f;
    f.append(10);
    const std::string old_key = f.public_key();
    auto rotation = f.rotate();
    REQUIRE(rotation.ok());
    CHECK(rotation->seq == 11);
    CHECK(rotation->previous_key_held);
    CHECK_FALSE(rotation->resumed);
    CHECK(rotation->previous_public_key == detail::to_hex(old_key));
    CHECK(rotation->public_key == detail::to_hex(f.public_key()));
    CHECK(f.public_key() != old_key);
    CHECK(rotation->retired_key_file == f.key_path.string() + ".retired-11");
    auto retired = audit_public_key(rotation->retired_key_file);
    REQUIRE(retired.ok());
    CHECK(*retired == old_key);
    CHECK_FALSE(std::filesystem::exists(f.key_path.string() + ".new"));

    AuditVerifyReport report = f.verify();
    INFO(report.problem);
    CHECK(report.ok);
    CHECK(report.key_rotations == 1);
    CHECK(report.last_checkpoint_seq == 11);

    // The server goes on with the new key; a second rotation chains on from it.
    f.append(6);
    REQUIRE(f.rotate().ok());
    f.append(3);
    report = f.verify();
    INFO(report.problem);
    CHECK(report.ok);
    CHECK(report.key_rotations == 2);
    CHECK(report.records == f.written);

    // Whoever trusts only the first key is told that the log moved on to another.
    report = f.verify(old_key);
    CHECK_FALSE(report.ok);
    CHECK(report.problem.find("hands over to a key other than the data directory's") !=
          std::string::npos);
}

TEST_CASE("a lost key is replaced by a rotation without handover, naming the key it replaces") {
    RotationFixture f;
    f.append(7);
    const std::string old_key = f.public_key();
    REQUIRE(std::filesystem::remove(f.key_path));

    auto refused = f.rotate(false);
    CHECK(refused.status().code() == StatusCode::kFailedPrecondition);
    CHECK(refused.status().message().find("rotate with 'previous key lost'") != std::string::npos);

    auto rotation = f.rotate(true);
    REQUIRE(rotation.ok());
    CHECK_FALSE(rotation->previous_key_held);
    CHECK(rotation->previous_public_key == detail::to_hex(old_key));
    CHECK(rotation->retired_key_file.empty());
    f.append(2);
    AuditVerifyReport report = f.verify();
    INFO(report.problem);
    CHECK(report.ok);
    CHECK(report.key_rotations == 1);

    // A held key is never rotated as lost: it must sign the handover.
    CHECK(f.rotate(true).status().code() == StatusCode::kInvalidArgument);
    // An empty log without a key has nothing to rotate.
    RotationFixture empty;
    CHECK(empty.rotate(true).status().code() == StatusCode::kFailedPrecondition);
    CHECK_FALSE(std::filesystem::exists(empty.key_path));
}

TEST_CASE("an interrupted rotation is finished by running it again; one never committed is not") {
    RotationFixture f;
    f.append(5);
    auto first = f.rotate();
    REQUIRE(first.ok());
    // As though the process died after the commit, before the key files moved.
    std::filesystem::rename(f.key_path, f.key_path.string() + ".new");
    std::filesystem::rename(first->retired_key_file, f.key_path);

    auto resumed = f.rotate();
    REQUIRE(resumed.ok());
    --f.written;  // it wrote no record
    CHECK(resumed->resumed);
    CHECK(resumed->seq == first->seq);
    CHECK(resumed->public_key == first->public_key);
    CHECK(detail::to_hex(f.public_key()) == first->public_key);
    AuditVerifyReport report = f.verify();
    INFO(report.problem);
    CHECK(report.ok);

    // A pending key the log does not name was never committed: it is dropped, and the
    // rotation starts afresh from the key in place.
    REQUIRE(new_key()->save(f.key_path.string() + ".new").ok());
    auto fresh = f.rotate();
    REQUIRE(fresh.ok());
    CHECK_FALSE(fresh->resumed);
    CHECK(fresh->previous_public_key == first->public_key);
    report = f.verify();
    INFO(report.problem);
    CHECK(report.ok);
    CHECK(report.key_rotations == 2);
}

TEST_CASE("verify refuses rotations and checkpoints that someone without the key made up") {
    RotationFixture f;
    f.append(6);
    const std::string real_key = f.public_key();

    SUBCASE("a rotation appended by a writer with its own key hands over to a foreign key") {
        auto mallory = new_key();
        detail::KeyRotationDetails details{false, real_key, mallory->public_key(), ""};
        f.append_signed_by(std::move(mallory), rotation_event(details));
        AuditVerifyReport report = f.verify();
        CHECK_FALSE(report.ok);
        CHECK(report.first_bad_seq == 7);
        CHECK(report.problem.find("hands over to a key other than the data directory's") !=
              std::string::npos);
    }
    SUBCASE("a rotation whose record is signed by a key other than the one it names") {
        auto signer = new_key();
        detail::KeyRotationDetails details{false, real_key, new_key()->public_key(), ""};
        f.append_signed_by(std::move(signer), rotation_event(details));
        AuditVerifyReport report = f.verify();
        CHECK_FALSE(report.ok);
        CHECK(report.problem.find("is not signed by the key it hands over to") !=
              std::string::npos);
    }
    SUBCASE("a rotation that claims a handover the previous key did not sign") {
        auto next = new_key();
        const std::string next_public = next->public_key();
        detail::KeyRotationDetails details{true, real_key, next_public, std::string(64, 'x')};
        f.append_signed_by(std::move(next), rotation_event(details));
        AuditVerifyReport report = f.verify(next_public);
        CHECK_FALSE(report.ok);
        CHECK(report.problem.find("handover signature does not verify") != std::string::npos);
    }
    SUBCASE("rotation details that are not what a rotation writes") {
        auto next = new_key();
        const std::string next_public = next->public_key();
        AuditEvent event = rotation_event({false, real_key, next_public, ""});
        event.details = "{\"public_key\":\"" + detail::to_hex(next_public) + "\"}";
        f.append_signed_by(std::move(next), event);
        AuditVerifyReport report = f.verify(next_public);
        CHECK_FALSE(report.ok);
        CHECK(report.first_bad_seq == 7);
        CHECK(report.problem.find("details are not what a rotation writes") != std::string::npos);
    }
    SUBCASE("the retired key signing on after its rotation") {
        auto rotation = f.rotate();
        REQUIRE(rotation.ok());
        auto retired = detail::Ed25519Key::load(rotation->retired_key_file);
        REQUIRE(retired.ok());
        f.append_signed_by(std::move(*retired), numbered_event(100));
        AuditVerifyReport report = f.verify();
        CHECK_FALSE(report.ok);
        CHECK(report.first_bad_seq == 8);
        CHECK(report.problem.find("signed by a key other than the one the log's key rotations "
                                  "put in use there") != std::string::npos);
    }
    SUBCASE("a checkpoint by another key, with no rotation at all") {
        f.append_signed_by(new_key(), numbered_event(100));
        AuditVerifyReport report = f.verify();
        CHECK_FALSE(report.ok);
        CHECK(report.problem.find("signed by a key other than the data directory's") !=
              std::string::npos);
    }
}

TEST_CASE("a rotation inside an archive is followed from the archive file") {
    RotationFixture f;
    f.append(5);
    REQUIRE(f.rotate().ok());
    f.append(5);
    auto archived = archive_audit_log(f.db_path, 8, f.dir.path / "archive-1.jsonl");
    REQUIRE(archived.ok());
    AuditVerifyReport report = f.verify();
    INFO(report.problem);
    CHECK(report.ok);
    CHECK(report.archived_records == 8);
    CHECK(report.key_rotations == 1);
}

TEST_CASE("rotation details have one spelling") {
    detail::KeyRotationDetails details{true, std::string(32, 'a'), std::string(32, 'b'),
                                       std::string(64, 'c')};
    const std::string json = detail::key_rotation_details_json(details);
    auto parsed = detail::parse_key_rotation_details(json);
    REQUIRE(parsed);
    CHECK(parsed->previous_public_key == details.previous_public_key);
    CHECK(parsed->handover_signature == details.handover_signature);
    CHECK_FALSE(detail::parse_key_rotation_details(json + " "));
    CHECK_FALSE(detail::parse_key_rotation_details(
        "{\"handover_signature\":\"\",\"previous_key\":\"maybe\",\"previous_public_key\":\"\","
        "\"public_key\":\"" +
        std::string(64, '0') + "\"}"));
    CHECK(detail::parse_key_rotation_details(
        "{\"handover_signature\":\"\",\"previous_key\":\"lost\",\"previous_public_key\":\"\","
        "\"public_key\":\"" +
        std::string(64, '0') + "\"}"));
}
