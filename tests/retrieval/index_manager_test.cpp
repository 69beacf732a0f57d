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
