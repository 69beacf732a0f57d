// SecretBox: AES-256-GCM sealing of stored secrets — round trip, a fresh nonce per value,
// tampering, another key, another identity, and the key file's creation and permissions.

#include "governance/secret_box.h"

#include <doctest/doctest.h>
#include <sys/stat.h>

#include <fstream>

#include "governance/governance.h"
#include "test_dir.h"

using namespace sluice::governance;
using sluice::StatusCode;
using sluice::testing::TempDir;

namespace {

std::unique_ptr<SecretBox> box_of(char fill) {
    auto box = SecretBox::from_key(std::string(32, fill));
    REQUIRE(box.ok());
    return std::move(*box);
}

mode_t mode_of(const std::filesystem::path& path) {
    struct stat info {};
    REQUIRE(::stat(path.c_str(), &info) == 0);
    return info.st_mode & 0777;
}

}  // namespace

TEST_CASE("secret box: round trip, a fresh nonce per value, the secret not in the sealed text") {
    auto box = box_of('a');
    auto sealed = box->seal("connection:crm", "Bearer s3cr3t-value");
    REQUIRE(sealed.ok());
    CHECK(SecretBox::is_sealed(*sealed));
    CHECK(sealed->find("s3cr3t") == std::string::npos);
    CHECK(sealed->starts_with("sealed:v1:" + box->key_id() + ":"));
    auto again = box->seal("connection:crm", "Bearer s3cr3t-value");
    REQUIRE(again.ok());
    CHECK(*again != *sealed);  // random nonce
    auto opened = box->open("connection:crm", *sealed);
    REQUIRE(opened.ok());
    CHECK(*opened == "Bearer s3cr3t-value");
    auto empty = box->seal("connection:crm", "");
    REQUIRE(empty.ok());
    CHECK(*box->open("connection:crm", *empty) == "");
    CHECK_FALSE(SecretBox::is_sealed("Bearer plain"));
    CHECK(SecretBox::sealed_key_id(*sealed) == box->key_id());
    CHECK(SecretBox::sealed_key_id("Bearer plain").empty());
    CHECK(SecretBox::sealed_key_id("sealed:v1:abc").empty());
    CHECK(SecretBox::from_key("short").status().code() == StatusCode::kInvalidArgument);
}

TEST_CASE("secret box: a flipped byte, another identity or another key do not open") {
    auto box = box_of('a');
    auto sealed = box->seal("connection:crm", "Bearer s3cr3t-value");
    REQUIRE(sealed.ok());
    // Flip each of several hex digits of the payload (nonce, ciphertext, tag).
    const size_t payload = std::string("sealed:v1:").size() + 9;
    for (size_t at : {payload, payload + 30, sealed->size() - 1}) {
        std::string tampered = *sealed;
        tampered[at] = tampered[at] == '0' ? '1' : '0';
        auto opened = box->open("connection:crm", tampered);
        REQUIRE_FALSE(opened.ok());
        CHECK(opened.status().code() == StatusCode::kDataLoss);
        CHECK(opened.status().message().find("connection:crm") != std::string::npos);
        CHECK(opened.status().message().find("altered") != std::string::npos);
        CHECK(opened.status().message().find("s3cr3t") == std::string::npos);
    }
    auto moved = box->open("connection:other", *sealed);
    REQUIRE_FALSE(moved.ok());
    CHECK(moved.status().message().find("connection:other") != std::string::npos);

    auto other = box_of('b');
    auto wrong = other->open("connection:crm", *sealed);
    REQUIRE_FALSE(wrong.ok());
    CHECK(wrong.status().code() == StatusCode::kDataLoss);
    CHECK(wrong.status().message() ==
          "connection:crm: cannot decrypt its secret: it was sealed with another key (key id " +
              box->key_id() + "; this server's key is " + other->key_id() + ")");
    // Another key whose id happens to match still fails on the tag: forge the id.
    std::string forged = *sealed;
    forged.replace(10, 8, other->key_id());
    CHECK(other->open("connection:crm", forged).status().message().find("altered") !=
          std::string::npos);
    CHECK(box->open("connection:crm", "Bearer plain").status().code() == StatusCode::kDataLoss);
    CHECK(box->open("connection:crm", "sealed:v1:zz").status().code() == StatusCode::kDataLoss);
}

TEST_CASE("secret key file: created 0600 on first start, reused, refused when open to others") {
    TempDir dir("secret-key");
    const auto path = dir.path / std::string(kSecretKeyFile);
    auto created = SecretBox::load_or_create(path, true);
    REQUIRE(created.ok());
    CHECK(mode_of(path) == 0600);
    auto sealed = (*created)->seal("connection:crm", "value");
    REQUIRE(sealed.ok());
    auto loaded = SecretBox::load_or_create(path, true);
    REQUIRE(loaded.ok());
    CHECK((*loaded)->key_id() == (*created)->key_id());
    CHECK(*(*loaded)->open("connection:crm", *sealed) == "value");

    std::filesystem::permissions(path, std::filesystem::perms::group_read,
                                 std::filesystem::perm_options::add);
    auto open_to_group = SecretBox::load_or_create(path, true);
    CHECK(open_to_group.status().code() == StatusCode::kFailedPrecondition);
    CHECK(open_to_group.status().message().find("mode 0600") != std::string::npos);

    auto missing = SecretBox::load_or_create(dir.path / "elsewhere.key", false);
    CHECK(missing.status().code() == StatusCode::kFailedPrecondition);
    CHECK_FALSE(std::filesystem::exists(dir.path / "elsewhere.key"));

    const auto bad = dir.path / "bad.key";
    std::ofstream(bad) << "not hex\n";
    std::filesystem::permissions(bad, std::filesystem::perms::owner_read |
                                          std::filesystem::perms::owner_write);
    CHECK(SecretBox::load_or_create(bad, false).status().code() == StatusCode::kDataLoss);
}

TEST_CASE("governance opens the data directory's key, or the file the options name") {
    TempDir dir("secret-gov");
    {
        auto gov = Governance::open(dir.path);
        REQUIRE(gov.ok());
        CHECK(mode_of(dir.path / std::string(kSecretKeyFile)) == 0600);
    }
    GovernanceOptions options;
    options.secret_key_file = dir.path / "kept-elsewhere.key";
    auto refused = Governance::open(dir.path, options);
    REQUIRE_FALSE(refused.ok());
    CHECK(refused.status().message().find("kept-elsewhere.key") != std::string::npos);
    std::filesystem::copy_file(dir.path / std::string(kSecretKeyFile), options.secret_key_file);
    auto gov = Governance::open(dir.path, options);
    REQUIRE(gov.ok());
}
