#pragma once
// Sources as catalog objects. A source is a catalog table `catalog.schema.name` tagged
// kind=source (as evaluation sets are tables tagged kind=eval_set), so owners, grants and their
// inheritance are governance's own; the index the source feeds is its tag `index`. The
// connector's configuration stays in the source registry (connectors/source_registry.h) under
// the same last name, which is unique among sources: REST paths and the CLI name sources by it.
//
//   create a source                  CREATE_TABLE on the schema (or, when the schema is not
//                                    there yet, the right to create it: create_source()), and
//                                    MODIFY on the index it feeds
//   bind, unbind, remove             MANAGE on the source (its owner holds it); binding needs
//                                    MODIFY on the index too
//   read its definition and status   BROWSE on the source
//   push events, "sync now"          MODIFY on the source
//
// Every check goes through Authorizer::require (audited). The check on the index is
// authorize_index_sync() alone, so that it follows the index's own securable when there is one.
//
// Before the catalog held them, bindings were a file, <data_dir>/sources/bindings.json
// ({"version": 1, "bindings": {"<source>": "<index>"}}). The offline CLI still writes that file
// when the catalog has no metastore admin yet to own a new source (a data directory whose server
// has never started); migrate_source_bindings() moves it into the catalog.
//
// Thread safety: free functions; thread-safe (the Store is).

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.h"
#include "connectors/source_registry.h"
#include "governance/governance.h"

namespace sluice::app {

inline constexpr std::string_view kSourceTag = "source";
// Where sources created without a schema (offline, or migrated from the bindings file) live.
inline constexpr std::string_view kDefaultSourceSchema = "main.sources";

struct SourceObject {
    std::string name;       // the source's name, its registry key
    std::string full_name;  // catalog.schema.name
    std::string index;      // "" when bound to no index
    std::string owner;
};

// The name of an index a source may feed: a valid index name that the catalog can name (a
// plain name or catalog.schema.index; two or four dotted parts could never be queried).
// kInvalidArgument naming the problem.
Status validate_source_index_name(const std::string& index);

// Every source object of the catalog, ordered by name.
Result<std::vector<SourceObject>> list_source_objects(governance::Store& store);
// kNotFound when no source object has this name.
Result<SourceObject> find_source_object(governance::Store& store, const std::string& name);
// Creates the table `schema.name` tagged as a source, owned by `owner_id`.
// kAlreadyExists when a source of that name exists (in any schema); kNotFound for a missing
// schema; kInvalidArgument for bad names.
Result<SourceObject> create_source_object(governance::Store& store, const std::string& schema,
                                          const std::string& name, std::int64_t owner_id,
                                          const std::string& index);
// Binds the source to `index`, or unbinds it when `index` is "". kNotFound.
Status set_source_index(governance::Store& store, const std::string& name,
                        const std::string& index);
// Removing a source object that does not exist is not an error.
Status drop_source_object(governance::Store& store, const std::string& name);

// A source to create (POST /api/sources, `sluice source add`).
struct NewSource {
    std::string name;
    std::string type;  // file, sqlite, postgres or http
    nlohmann::json config = nlohmann::json::object();
    std::string schema;  // "catalog.schema"; "" for kDefaultSourceSchema
    std::string index;   // the index it feeds; "" for none yet
};

// Creates a source as `context`, the one way both the REST API and the offline CLI (acting as
// a metastore admin) do it:
//   1. checks the index and schema names;
//   2. authorises: CREATE_TABLE on the schema, or for a schema not there yet CREATE_SCHEMA on
//      its catalog (CREATE_CATALOG on the metastore for a catalog not there yet); MODIFY on the
//      index (authorize_index_sync); USE_CONNECTION on the connection the configuration names;
//      a metastore admin for a source that reads the server's files;
//   3. validates the definition (the registry's checks, data directory included);
//   4. creates the missing catalog and schema (owned by the caller, audited as
//      "securable.create"), the source object (owned by the caller), then the definition,
//      dropping the object again when the definition cannot be stored.
// Everything after the authorisation is audited as "source.create", success or not.
// Errors: kInvalidArgument (names, definition), kPermissionDenied, kAlreadyExists, and those of
// the stores.
Result<SourceObject> create_source(governance::Governance& gov,
                                   connectors::SourceRegistry& registry,
                                   const governance::RequestContext& context,
                                   const NewSource& source);

// Creates the catalog and schema of `schema` ("catalog.schema") when missing, owned by
// `owner_id`, without authorising. For the migration, which acts for the operator.
Status ensure_source_schema(governance::Store& store, const std::string& schema,
                            std::int64_t owner_id);
// The metastore admin the offline CLI and the migration act for: `name` when given (it must be
// an admin), else the first admin by id. kNotFound when the catalog has no admin yet.
Result<governance::Principal> acting_admin(governance::Store& store, const std::string& name);

// The one privilege check on the index a source feeds: MODIFY on it. An index registered in the
// catalog (as `catalog.schema.name`, or a plain name as vector_search.default.<name>) is checked
// as that securable; an index not registered yet can only be bound by a metastore admin.
Status authorize_index_sync(governance::Governance& gov,
                            const governance::RequestContext& context, const std::string& index);

// The secret of the catalog connection a source's configuration names ("connection": kept in
// catalog.db as a connection's secret, PUT /api/connections/{name}), or "" when it names none.
// The secret is opened with `secrets` (governance's SecretBox); null: the data directory's
// secrets.key, which must then exist. Errors: kNotFound for an unknown connection; kDataLoss
// naming the connection when its secret does not open; kPermissionDenied when the
// configuration's conninfo names a server (or none, or a service) outside the connection's
// allowed_hosts, since libpq sends the password to the server it connects to.
Result<std::string> source_secret(const std::filesystem::path& data_dir,
                                  const connectors::SourceDefinition& definition,
                                  const governance::SecretBox* secrets = nullptr);
// USE_CONNECTION on the connection a source configuration names, if any (audited).
Status authorize_source_connection(governance::Governance& gov,
                                   const governance::RequestContext& context,
                                   const nlohmann::json& config);

// The bindings file, for the offline CLI when no admin can own a new source yet, and for
// reading what it staged. Errors: kDataLoss when the file does not parse; kIoError.
Result<std::map<std::string, std::string>> read_staged_bindings(
    const std::filesystem::path& data_dir);
Status stage_binding(const std::filesystem::path& data_dir, const std::string& source,
                     const std::string& index);
Status unstage_binding(const std::filesystem::path& data_dir, const std::string& source);

// Gives every source of the registry a catalog object (in kDefaultSourceSchema, owned by the
// first metastore admin) bound as the bindings file says, then renames the file to
// bindings.json.migrated. Each created object is audited as "source.migrate". Returns how many
// objects were created; 0 without error when there is nothing to do. kFailedPrecondition when
// there is something to migrate but no admin to own it.
Result<std::size_t> migrate_source_bindings(governance::Governance& gov,
                                            connectors::SourceRegistry& registry,
                                            const std::filesystem::path& data_dir);

}  // namespace sluice::app
