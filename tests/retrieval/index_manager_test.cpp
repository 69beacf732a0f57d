#include "retrieval/index_manager.h"

#include <doctest/doctest.h>

#include <fstream>

#include "temp_dir.h"

using namespace sluice::retrieval;
using sluice::retrieval::testing::TempDir;

TEST_CASE("an index whose creation was interrupted is removed, and its name stays free") {
    TempDir dir("manager-interrupted");
    // What a process killed inside create() leaves: a half-made folder under the build name.
    std::filesystem::create_directories(dir.path() / ".creating-kb" / "store");
    std::ofstream(dir.path() / ".creating-kb" / "store" / "LOCK") << "";
    auto manager = IndexManager::open(dir.path(), IndexDeps{});
    REQUIRE(manager.ok());
    CHECK((*manager)->list().empty());
    CHECK_FALSE(std::filesystem::exists(dir.path() / ".creating-kb"));
    IndexSettings settings;
    settings.name = "kb";
    auto created = (*manager)->create(settings);
    REQUIRE_MESSAGE(created.ok(), created.status().to_string());
    CHECK(std::filesystem::exists(dir.path() / "kb" / "store" / "CURRENT"));
    CHECK_FALSE(std::filesystem::exists(dir.path() / ".creating-kb"));
    Document doc;
    doc.key = "a";
    doc.text = "alpha";
    doc.acl.groups = {"staff"};
    REQUIRE((*created)->upsert({doc}).ok());
    created->reset();
    manager->reset();
    auto reopened = IndexManager::open(dir.path(), IndexDeps{});
    REQUIRE(reopened.ok());
    auto index = (*reopened)->get("kb");
    REQUIRE(index.ok());
    CHECK((*index)->stats().documents == 1);
}

TEST_CASE("an index that cannot be opened is left out, and get and create say why") {
    TempDir dir("manager-left-out");
    {
        auto manager = IndexManager::open(dir.path(), IndexDeps{});
        REQUIRE(manager.ok());
        IndexSettings settings;
        settings.name = "kb";
        REQUIRE((*manager)->create(settings).ok());
    }
    // What an offline command meets with an index whose embedder only the server has.
    IndexDeps without_embedders;
    without_embedders.embedders =
        [](const IndexSettings& settings) -> sluice::Result<std::shared_ptr<const Embedder>> {
        return sluice::not_supported("embedder '" + settings.embedder + "' is not here");
    };
    auto manager = IndexManager::open(dir.path(), without_embedders);
    REQUIRE(manager.ok());
    CHECK((*manager)->list().empty());
    auto index = (*manager)->get("kb");
    REQUIRE_FALSE(index.ok());
    CHECK(index.status().code() == sluice::StatusCode::kFailedPrecondition);
    CHECK(index.status().message().find("could not be opened") != std::string::npos);
    CHECK(index.status().message().find("is not here") != std::string::npos);
    IndexSettings settings;
    settings.name = "kb";
    auto created = (*manager)->create(settings);
    REQUIRE_FALSE(created.ok());
    CHECK(created.status().code() == sluice::StatusCode::kAlreadyExists);
    CHECK(created.status().message().find("is not here") != std::string::npos);
    CHECK((*manager)->get("other").status().code() == sluice::StatusCode::kNotFound);
    // The folder is untouched: with the embedder back the index opens.
    auto again = IndexManager::open(dir.path(), IndexDeps{});
    REQUIRE(again.ok());
    CHECK((*again)->get("kb").ok());
}

TEST_CASE("a line break in a setting is refused, so no index answers to another's name") {
    TempDir dir("manager-settings-lines");
    auto manager = IndexManager::open(dir.path(), IndexDeps{});
    REQUIRE(manager.ok());
    IndexSettings victim;
    victim.name = "victim";
    REQUIRE((*manager)->create(victim).ok());
    // Stored as key=value lines, this read back as name=victim: deleting "evil" then removed
    // the folder of "victim".
    for (const char* field : {"embedder_model", "embedder_endpoint"}) {
        CAPTURE(field);
        IndexSettings evil;
        evil.name = "evil";
        (std::string(field) == "embedder_model" ? evil.embedder_model : evil.embedder_endpoint) =
            "x\nname=victim";
        const sluice::Status valid = validate(evil);
        CHECK(valid.code() == sluice::StatusCode::kInvalidArgument);
        CHECK(valid.message() ==
              std::string(field) +
                  " holds the control byte 0x0a at offset 1, expected printable text");
        auto created = (*manager)->create(evil);
        REQUIRE_FALSE(created.ok());
        CHECK(created.status().code() == sluice::StatusCode::kInvalidArgument);
        CHECK_FALSE(std::filesystem::exists(dir.path() / "evil"));
    }
    IndexSettings tab;
    tab.name = "tab";
    tab.embedder_model = "model\tname";
    CHECK(validate(tab).code() == sluice::StatusCode::kInvalidArgument);
    tab.embedder_model = "model name=v2 (é)";
    CHECK(validate(tab).ok());
}

TEST_CASE("a folder whose stored settings name another index is left out") {
    TempDir dir("manager-name-mismatch");
    {
        auto manager = IndexManager::open(dir.path(), IndexDeps{});
        REQUIRE(manager.ok());
        IndexSettings victim;
        victim.name = "victim";
        REQUIRE((*manager)->create(victim).ok());
    }
    // What an earlier build stored for "evil" when its embedder_model held "\nname=victim".
    IndexSettings stored;
    stored.name = "victim";
    REQUIRE(Index::create(dir.path() / "evil", stored, IndexDeps{}).ok());
    auto manager = IndexManager::open(dir.path(), IndexDeps{});
    REQUIRE(manager.ok());
    CHECK((*manager)->list() == std::vector<std::string>{"victim"});
    auto evil = (*manager)->get("evil");
    REQUIRE_FALSE(evil.ok());
    CHECK(evil.status().code() == sluice::StatusCode::kFailedPrecondition);
    CHECK(evil.status().message().find("index folder 'evil' holds the settings of an index "
                                       "named 'victim'") != std::string::npos);
    auto victim = (*manager)->get("victim");
    REQUIRE(victim.ok());
    CHECK((*victim)->dir() == dir.path() / "victim");
}
