#pragma once
// SourceRegistry: the sources defined in a data directory (`sluice source add`), kept in
// <data_dir>/sources/registry.db (SQLite, owner-only permissions: PostgreSQL connection strings
// may hold passwords), and the factory that opens a Source from a definition.
//
// Each source has a state folder <data_dir>/sources/<name>/ for what the source itself keeps
// (file manifests, the HTTP push log).
//
// The catalog binding (a source as a securable with a governance connection) belongs to app/;
// this registry is the connectors' own, plain-struct view of the configuration.
//
// Thread safety: thread-safe (one connection behind a mutex).

#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.h"
#include "connectors/push_source.h"
#include "connectors/source.h"

namespace sluice::connectors {

struct SourceDefinition {
    std::string name;  // 1–64 of a-z 0-9 _ -
    std::string kind;  // "file" | "sqlite" | "postgres" | "http"
    nlohmann::json config = nlohmann::json::object();
    std::string created_at;  // ISO 8601, set by add()
    // Unique to each add(), set by it: tells a source from an earlier one of the same name that
    // was removed (retrieval::SyncOptions::incarnation). "" for sources added by older releases.
    std::string incarnation{};
};

// Checks name, kind and configuration; fills PostgreSQL's slot and publication names from the
// source's name when absent. A file source's configuration must hold "acl", a sqlite source's
// every table (an explicit {"principals": [], "groups": []} means nobody). Errors:
// kInvalidArgument naming the field.
Result<SourceDefinition> validate_definition(SourceDefinition definition);

// Whether a source of this kind reads files of the machine the server runs on, with the
// server's rights ("file": its root; "sqlite": its database, into which it also installs
// triggers). Creating or changing one is a metastore admin's decision.
bool reads_server_files(const std::string& kind);

// Whether a source of this definition reads this machine with the server's rights: one of
// reads_server_files(), or a postgres source that names no catalog connection. libpq then
// connects wherever the conninfo says, from this machine, as the server's operating-system user:
// to this machine's own PostgreSQL (a Unix socket, no host, a service, a loopback address or
// another of this machine's names), where peer and trust authentication admit that user, or to
// any server with the passwords that user keeps in ~/.pgpass. With a connection, the sync hands
// libpq on only to the servers its allowed_hosts name (app/source_catalog.h). Creating or
// changing a source that reads the machine is a metastore admin's decision.
bool reads_server_machine(const SourceDefinition& definition);

// Refuses (kInvalidArgument naming the field) a definition whose source would read a path
// inside or equal to `data_dir` (its catalog, tokens, audit log, indexes), after resolving
// symbolic links and ".." (std::filesystem::weakly_canonical) on both sides. Definitions that
// read no local path pass.
Status check_outside_data_dir(const SourceDefinition& definition,
                              const std::filesystem::path& data_dir);

// The definition as shown to operators: credentials redacted.
nlohmann::json describe(const SourceDefinition& definition);

// Opens the source. `state_dir` is created when missing. `secret` is the secret of the catalog
// connection the definition names ("connection": the PostgreSQL password), resolved by the
// application; never logged.
// Errors: those of the source's open(), and kInvalidArgument for a bad definition.
Result<std::unique_ptr<Source>> open_source(const SourceDefinition& definition,
                                            const std::filesystem::path& state_dir,
                                            const std::string& secret = "");
// The same for an "http" source, typed, for the push endpoint.
Result<std::unique_ptr<PushSource>> open_push_source(const SourceDefinition& definition,
                                                     const std::filesystem::path& state_dir);

// Removes what opening the source installed outside its state folder: a sqlite source's change
// capture in the user's database (remove_sqlite_capture). Other kinds keep nothing there. Logs
// what was dropped, and as a warning what was left behind and how to remove it. Returns {} when
// nothing is left, else {"left_behind": ["trigger ...", "table ..."], "reason", "cleanup_sql"}
// for the operator. Call it once the source is closed.
nlohmann::json release_source(const SourceDefinition& definition);

namespace detail {
struct RegistryDb;
}

class SourceRegistry {
public:
    // Creates <data_dir>/sources and its registry when missing, never `data_dir` itself.
    // Errors: kNotFound when `data_dir` is not an existing folder; kIoError when the folder or
    // file cannot be created.
    static Result<std::unique_ptr<SourceRegistry>> open(const std::filesystem::path& data_dir);
    // Whether open() has made a registry in `data_dir`: one without it has no sources, and
    // commands that only read sources say so instead of creating it.
    static bool exists(const std::filesystem::path& data_dir);
    ~SourceRegistry();

    // validate_definition, and check_outside_data_dir for this registry's data directory.
    Result<SourceDefinition> validate(SourceDefinition definition) const;
    // A new source starts with an empty state folder: whatever a removed source of the same
    // name left there is deleted first. Errors: kInvalidArgument (validate), kAlreadyExists,
    // kIoError (the leftover state cannot be deleted).
    Status add(SourceDefinition definition);
    Result<std::vector<SourceDefinition>> list();
    // Errors: kNotFound.
    Result<SourceDefinition> get(const std::string& name);
    // Errors: kNotFound. The state folder is removed too.
    Status remove(const std::string& name);

    std::filesystem::path state_dir(const std::string& name) const;

    SourceRegistry(std::filesystem::path root, std::unique_ptr<detail::RegistryDb> db);

private:
    std::filesystem::path root_;  // <data_dir>/sources
    std::mutex mutex_;
    std::unique_ptr<detail::RegistryDb> db_;  // guarded by mutex_
};

}  // namespace sluice::connectors
