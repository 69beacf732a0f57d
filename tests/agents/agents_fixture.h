#pragma once
// A governed world for agents tests: a data directory with governance, principals (the owner
// of everything, alice the analyst, bob with nothing, and the service principal `svc`), the
// tool functions as catalog objects, and the Chinook database behind schema `music.store` with
// Customer and Invoice governed (Customer filtered to alice's country set and its Email masked).

#include <sqlite3.h>

#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>

#include "doctest/doctest.h"
#include "governance/governance.h"

namespace sluice::agents::testing {

using governance::Principal;
using governance::PrincipalKind;
using governance::Privilege;
using governance::RequestContext;
using governance::SecurableType;

struct TempDir {
    std::filesystem::path path;
    explicit TempDir(const std::string& name) {
        std::random_device random;
        path = std::filesystem::temp_directory_path() /
               ("sluice-agents-" + name + "-" + std::to_string(random()));
        std::filesystem::remove_all(path);
        std::filesystem::create_directories(path);
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
};

inline std::filesystem::path chinook_path() {
    const char* shared = std::getenv("SLUICE_SHARED_DIR");
    // ctest sets SLUICE_SHARED_DIR; run by hand, the shared folder beside the checkout.
    return std::filesystem::path(shared ? shared : SLUICE_SOURCE_DIR "/../shared") / "data" /
           "chinook" / "Chinook_Sqlite.sqlite";
}

// The columns of a table of the Chinook file, as governance stores them.
inline std::vector<governance::ColumnInfo> source_columns(const std::filesystem::path& db_path,
                                                          const std::string& table) {
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
    sqlite3_stmt* stmt = nullptr;
    std::string sql = "PRAGMA table_info(\"" + table + "\")";
    REQUIRE(sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK);
    std::vector<governance::ColumnInfo> columns;
    while (sqlite3_step(stmt) == SQLITE_ROW) {
        columns.push_back({reinterpret_cast<const char*>(sqlite3_column_text(stmt, 1)),
                           reinterpret_cast<const char*>(sqlite3_column_text(stmt, 2))});
    }
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    return columns;
}

struct World {
    TempDir dir{"world"};
    std::unique_ptr<governance::Governance> gov;
    Principal owner, alice, bob, svc;

    World() {
        auto opened = governance::Governance::open(dir.path);
        REQUIRE(opened.ok());
        gov = std::move(*opened);
        auto& s = gov->store();
        owner = *s.create_principal("owner", PrincipalKind::kUser, true);
        alice = *s.create_principal("alice", PrincipalKind::kUser, false);
        bob = *s.create_principal("bob", PrincipalKind::kUser, false);
        svc = *s.create_principal("svc", PrincipalKind::kServicePrincipal, false);
        REQUIRE(s.create_securable(SecurableType::kCatalog, "main", owner.id, "", {}).ok());
        REQUIRE(s.create_securable(SecurableType::kSchema, "main.tools", owner.id, "", {}).ok());
        grant(SecurableType::kCatalog, "main", "alice", Privilege::kUseCatalog);
        grant(SecurableType::kSchema, "main.tools", "alice", Privilege::kUseSchema);
        grant(SecurableType::kCatalog, "main", "bob", Privilege::kUseCatalog);
        grant(SecurableType::kSchema, "main.tools", "bob", Privilege::kUseSchema);
    }

    void function(const std::string& full_name) {
        REQUIRE(gov->store().create_securable(SecurableType::kFunction, full_name, owner.id, "", {})
                    .ok());
    }

    void grant(SecurableType type, const std::string& name, const std::string& who,
               Privilege privilege) {
        auto securable = gov->store().securable(type, name);
        REQUIRE(securable.ok());
        REQUIRE(gov->store()
                    .update_permissions(securable->id, type, {{who, {privilege}, {}}}, owner.id)
                    .ok());
    }

    RequestContext as(const Principal& p) const {
        return RequestContext{p.id, p.name, "req_test", "127.0.0.1", "tok_test"};
    }

    // Copies Chinook here and governs Customer (row filter: USA and Canada unless the caller
    // is in group `global`; Email masked) and Invoice under music.store. False when the shared
    // data is missing.
    bool govern_chinook(std::filesystem::path* copied) {
        if (!std::filesystem::exists(chinook_path())) {
            MESSAGE("skipped: " << chinook_path() << " is not here");
            return false;
        }
        *copied = dir.path / "chinook.sqlite";
        std::filesystem::copy_file(chinook_path(), *copied);
        auto& s = gov->store();
        REQUIRE(s.create_securable(SecurableType::kCatalog, "music", owner.id, "", {}).ok());
        REQUIRE(s.create_securable(SecurableType::kSchema, "music.store", owner.id, "", {}).ok());
        REQUIRE(s.create_securable(SecurableType::kTable, "music.store.customers", owner.id, "",
                                   {{"source_table", "Customer"}})
                    .ok());
        REQUIRE(s.create_securable(SecurableType::kTable, "music.store.invoice", owner.id, "", {})
                    .ok());
        REQUIRE(s.create_securable(SecurableType::kTable, "music.store.employee", owner.id, "", {})
                    .ok());
        auto& p = gov->policies();
        REQUIRE(p.set_columns("music.store.customers", source_columns(*copied, "Customer")).ok());
        REQUIRE(p.set_columns("music.store.invoice", source_columns(*copied, "Invoice")).ok());
        REQUIRE(p.set_columns("music.store.employee", source_columns(*copied, "Employee")).ok());
        REQUIRE(p.set_row_filter("music.store.customers",
                                 "Country IN ('USA', 'Canada') OR is_account_group_member('global')",
                                 "owner")
                    .ok());
        REQUIRE(p.set_column_mask("music.store.customers", "Email",
                                  "CASE WHEN is_account_group_member('global') THEN Email ELSE "
                                  "'***' END",
                                  "owner")
                    .ok());
        for (const char* who : {"alice", "bob"}) {
            grant(SecurableType::kCatalog, "music", who, Privilege::kUseCatalog);
            grant(SecurableType::kSchema, "music.store", who, Privilege::kUseSchema);
        }
        grant(SecurableType::kTable, "music.store.customers", "alice", Privilege::kSelect);
        grant(SecurableType::kTable, "music.store.invoice", "alice", Privilege::kSelect);
        return true;
    }
};

}  // namespace sluice::agents::testing
