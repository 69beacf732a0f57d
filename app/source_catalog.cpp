#include "app/source_catalog.h"

#include <algorithm>
#include <cctype>
#include <fstream>
#include <sstream>
#include <tuple>

#include <nlohmann/json.hpp>

#include "agents/agent_store.h"
#include "agents/index_access.h"
#include "app/atomic_file.h"
#include "app/governance_http.h"
#include "common/log.h"
#include "connectors/postgres_source.h"
#include "retrieval/index_settings.h"

namespace sluice::app {
namespace {

using governance::SecurableType;
using nlohmann::json;

bool is_source(const governance::Securable& securable) {
    auto kind = securable.tags.find("kind");
    return kind != securable.tags.end() && kind->second == kSourceTag;
}

SourceObject object_of(const governance::Securable& securable) {
    SourceObject out;
    out.name = securable.name;
    out.full_name = securable.full_name;
    out.owner = securable.owner;
    if (auto index = securable.tags.find("index"); index != securable.tags.end()) {
        out.index = index->second;
    }
    return out;
}

// The tables named `name` (any schema) that are sources, with their tags.
Result<std::vector<governance::Securable>> source_tables(governance::Store& store,
                                                         const std::string& name) {
    SLUICE_ASSIGN_OR_RETURN(governance::AuthzData data, store.load_authz_data());
    std::vector<governance::Securable> out;
    for (const auto& securable : data.securables) {
        if (securable.type != SecurableType::kTable) {
            continue;
        }
        // The authorisation data carries full names only.
        const std::string last = securable.full_name.substr(securable.full_name.rfind('.') + 1);
        if (!name.empty() && last != name) {
            continue;
        }
        SLUICE_ASSIGN_OR_RETURN(auto full, store.securable(SecurableType::kTable,
                                                           securable.full_name));
        if (is_source(full)) {
            out.push_back(std::move(full));
        }
    }
    return out;
}

std::filesystem::path bindings_path(const std::filesystem::path& data_dir) {
    return data_dir / "sources" / "bindings.json";
}

Status write_staged(const std::filesystem::path& data_dir,
                    const std::map<std::string, std::string>& bindings) {
    std::error_code ec;
    std::filesystem::create_directories(data_dir / "sources", ec);
    if (ec) {
        return io_error("cannot create " + (data_dir / "sources").string() + ": " + ec.message());
    }
    json out{{"version", 1}, {"bindings", bindings}};
    return write_file_atomically(bindings_path(data_dir), out.dump(2) + "\n");
}

}  // namespace

Status validate_source_index_name(const std::string& index) {
    SLUICE_RETURN_IF_ERROR(retrieval::validate_index_name(index));
    return agents::index_securable_name(index).status();
}

Result<std::vector<SourceObject>> list_source_objects(governance::Store& store) {
    SLUICE_ASSIGN_OR_RETURN(auto tables, source_tables(store, ""));
    std::vector<SourceObject> out;
    for (const auto& table : tables) {
        out.push_back(object_of(table));
    }
    std::sort(out.begin(), out.end(),
              [](const SourceObject& a, const SourceObject& b) { return a.name < b.name; });
    return out;
}

Result<SourceObject> find_source_object(governance::Store& store, const std::string& name) {
    SLUICE_ASSIGN_OR_RETURN(auto tables, source_tables(store, name));
    if (tables.empty()) {
        return not_found("source '" + name + "' is not in the catalog");
    }
    return object_of(tables.front());
}

Result<SourceObject> create_source_object(governance::Store& store, const std::string& schema,
                                          const std::string& name, std::int64_t owner_id,
                                          const std::string& index) {
    if (!index.empty()) {
        SLUICE_RETURN_IF_ERROR(retrieval::validate_index_name(index).with_context("index"));
    }
    auto existing = find_source_object(store, name);
    if (existing.ok()) {
        return Status(StatusCode::kAlreadyExists,
                      "source '" + name + "' already exists as " + existing->full_name);
    }
    if (existing.status().code() != StatusCode::kNotFound) {
        return existing.status();
    }
    std::map<std::string, std::string> tags{{"kind", std::string(kSourceTag)}};
    if (!index.empty()) {
        tags["index"] = index;
    }
    SLUICE_ASSIGN_OR_RETURN(auto created,
                            store.create_securable(SecurableType::kTable, schema + "." + name,
                                                   owner_id, "change-feed source", tags));
    return object_of(created);
}

Status set_source_index(governance::Store& store, const std::string& name,
                        const std::string& index) {
    if (!index.empty()) {
        SLUICE_RETURN_IF_ERROR(retrieval::validate_index_name(index).with_context("index"));
    }
    SLUICE_ASSIGN_OR_RETURN(auto tables, source_tables(store, name));
    if (tables.empty()) {
        return not_found("source '" + name + "' is not in the catalog");
    }
    auto tags = tables.front().tags;
    if (index.empty()) {
        tags.erase("index");
    } else {
        tags["index"] = index;
    }
    return store
        .update_securable(SecurableType::kTable, tables.front().full_name, std::nullopt,
                          std::nullopt, tags)
        .status();
}

Status drop_source_object(governance::Store& store, const std::string& name) {
    SLUICE_ASSIGN_OR_RETURN(auto tables, source_tables(store, name));
    for (const auto& table : tables) {
        SLUICE_RETURN_IF_ERROR(
            store.delete_securable(SecurableType::kTable, table.full_name, /*force=*/true));
    }
    return Status();
}

Status ensure_source_schema(governance::Store& store, const std::string& schema,
                            std::int64_t owner_id) {
    SLUICE_ASSIGN_OR_RETURN(auto parts, governance::split_full_name(SecurableType::kSchema, schema));
    for (auto [type, name] : {std::pair{SecurableType::kCatalog, parts[0]},
                              std::pair{SecurableType::kSchema, schema}}) {
        auto existing = store.securable(type, name);
        if (existing.ok()) {
            continue;
        }
        if (existing.status().code() != StatusCode::kNotFound) {
            return existing.status();
        }
        auto created = store.create_securable(type, name, owner_id, "", {});
        if (!created.ok() && created.status().code() != StatusCode::kAlreadyExists) {
            return created.status();
        }
    }
    return Status();
}

namespace {

// Whether the store has the securable; errors other than kNotFound are errors.
Result<bool> securable_exists(governance::Store& store, SecurableType type,
                              const std::string& full_name) {
    auto found = store.securable(type, full_name);
    if (found.ok()) {
        return true;
    }
    if (found.status().code() == StatusCode::kNotFound) {
        return false;
    }
    return found.status();
}

// What create_source() creates of "catalog.schema" before the source goes into it.
struct MissingContainers {
    bool catalog = false;
    bool schema = false;
};

// The right to put a table into `schema`: CREATE_TABLE on it, or when it is missing the
// privileges to create it (and its catalog). Whoever creates the schema owns it, and so may
// create tables in it.
Result<MissingContainers> authorize_source_schema(governance::Governance& gov,
                                                  const governance::RequestContext& context,
                                                  const std::string& schema) {
    const std::string catalog = schema.substr(0, schema.find('.'));
    MissingContainers missing;
    SLUICE_ASSIGN_OR_RETURN(bool has_schema,
                            securable_exists(gov.store(), SecurableType::kSchema, schema));
    if (has_schema) {
        SLUICE_RETURN_IF_ERROR(gov.authorizer().require(
            context, governance::Privilege::kCreateTable, SecurableType::kSchema, schema));
        return missing;
    }
    missing.schema = true;
    SLUICE_ASSIGN_OR_RETURN(bool has_catalog,
                            securable_exists(gov.store(), SecurableType::kCatalog, catalog));
    if (has_catalog) {
        SLUICE_RETURN_IF_ERROR(gov.authorizer().require(
            context, governance::Privilege::kCreateSchema, SecurableType::kCatalog, catalog));
        return missing;
    }
    missing.catalog = true;
    SLUICE_RETURN_IF_ERROR(gov.authorizer().require(context, governance::Privilege::kCreateCatalog,
                                                    SecurableType::kMetastore, ""));
    return missing;
}

// Creates what authorize_source_schema() found missing, owned by the caller, audited as the
// catalog API audits a create.
Status create_source_schema(governance::Governance& gov, const governance::RequestContext& context,
                            const std::string& schema, const MissingContainers& missing) {
    const std::string catalog = schema.substr(0, schema.find('.'));
    for (const auto& [type, name, wanted] :
         {std::tuple{SecurableType::kCatalog, catalog, missing.catalog},
          std::tuple{SecurableType::kSchema, schema, missing.schema}}) {
        if (!wanted) {
            continue;
        }
        auto created = gov.store().create_securable(type, name, context.principal_id, "", {});
        // Created meanwhile by someone else: the source goes into theirs, as authorised above.
        if (!created.ok() && created.status().code() == StatusCode::kAlreadyExists) {
            continue;
        }
        SLUICE_RETURN_IF_ERROR(
            audit_action(gov, context, "securable.create",
                         std::string(governance::securable_type_name(type)) + ":" + name,
                         created.status(), "for a source"));
        SLUICE_RETURN_IF_ERROR(created.status());
    }
    return Status();
}

}  // namespace

Result<SourceObject> create_source(governance::Governance& gov,
                                   connectors::SourceRegistry& registry,
                                   const governance::RequestContext& context,
                                   const NewSource& source) {
    const std::string schema =
        source.schema.empty() ? std::string(kDefaultSourceSchema) : source.schema;
    if (!source.index.empty()) {
        SLUICE_RETURN_IF_ERROR(validate_source_index_name(source.index).with_context("index"));
    }
    SLUICE_RETURN_IF_ERROR(governance::split_full_name(SecurableType::kSchema, schema)
                               .status()
                               .with_context("schema"));
    SLUICE_ASSIGN_OR_RETURN(MissingContainers missing,
                            authorize_source_schema(gov, context, schema));
    if (!source.index.empty()) {
        SLUICE_RETURN_IF_ERROR(authorize_index_sync(gov, context, source.index));
    }
    SLUICE_RETURN_IF_ERROR(authorize_source_connection(gov, context, source.config));
    const connectors::SourceDefinition definition{source.name, source.type, source.config, ""};
    if (connectors::reads_server_machine(definition)) {
        // The source reads this machine (a path, or its own PostgreSQL as the server's user)
        // with the server's rights: an admin's decision.
        SLUICE_RETURN_IF_ERROR(require_admin(gov, context, "source.create." + source.type));
    }
    if (find_source_object(gov.store(), source.name).ok()) {
        return Status(StatusCode::kAlreadyExists, "source '" + source.name + "' already exists");
    }
    // Two stores, written in order and undone on failure: the object, then the definition. In
    // that order a running server's reconcile in between sees an object without a definition
    // (and skips it), never a definition without an object (which it would move into the
    // default schema).
    auto object = [&]() -> Result<SourceObject> {
        SLUICE_RETURN_IF_ERROR(registry.validate(definition).status());
        SLUICE_RETURN_IF_ERROR(create_source_schema(gov, context, schema, missing));
        SLUICE_ASSIGN_OR_RETURN(SourceObject created,
                                create_source_object(gov.store(), schema, source.name,
                                                     context.principal_id, source.index));
        if (Status added = registry.add(definition); !added.ok()) {
            // A source is in both stores or in neither.
            if (Status undone = drop_source_object(gov.store(), source.name); !undone.ok()) {
                log::error("sync", "cannot undo a source's catalog object",
                           {{"source", source.name}, {"error", undone.message()}});
            }
            return added;
        }
        return created;
    }();
    SLUICE_RETURN_IF_ERROR(audit_action(
        gov, context, "source.create", "table:" + schema + "." + source.name, object.status(),
        json{{"source", source.name}, {"type", source.type}, {"index", source.index}}.dump()));
    return object;
}

Result<governance::Principal> acting_admin(governance::Store& store, const std::string& name) {
    if (!name.empty()) {
        SLUICE_ASSIGN_OR_RETURN(auto principal, store.principal(name));
        if (!principal.is_admin) {
            return Status(StatusCode::kPermissionDenied,
                          "'" + name + "' is not a metastore admin");
        }
        return principal;
    }
    SLUICE_ASSIGN_OR_RETURN(auto principals, store.principals());
    std::optional<governance::Principal> first;
    for (const auto& principal : principals) {
        if (principal.is_admin && principal.kind != governance::PrincipalKind::kGroup &&
            (!first || principal.id < first->id)) {
            first = principal;
        }
    }
    if (!first) {
        return not_found("the catalog has no metastore admin yet");
    }
    return *first;
}

Status authorize_index_sync(governance::Governance& gov,
                            const governance::RequestContext& context, const std::string& index) {
    // An index that is a catalog securable is governed by its grants; a plain-named index is
    // one under its catalog name (vector_search.default.<name>, agents/index_access.h).
    const Result<std::string> securable = agents::index_securable_name(index);
    if (securable.ok() && gov.store().securable(SecurableType::kVectorIndex, *securable).ok()) {
        return gov.authorizer().require(context, governance::Privilege::kModify,
                                        SecurableType::kVectorIndex, *securable);
    }
    // An index not registered in the catalog yet: binding a source to it is an admin's decision.
    return require_admin(gov, context, "feeding unregistered index '" + index + "'");
}

namespace {

std::string connection_of(const json& config) {
    auto it = config.find("connection");
    return it != config.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// libpq hands the password to whichever server the connection string names, so the secret
// goes only where its connection allows: every server named must be one of the connection's
// allowed_hosts ("host" for port 5432, or "host:port"), as an http_request tool's URL must.
// Without it, anyone with USE_CONNECTION could point a source at a server of their own and be
// sent the password.
Status check_connection_hosts(const connectors::SourceDefinition& definition,
                              const agents::Connection& connection) {
    auto conninfo = definition.config.find("conninfo");
    if (conninfo == definition.config.end() || !conninfo->is_string()) {
        return invalid_argument("conninfo: expected a non-empty string");
    }
    SLUICE_ASSIGN_OR_RETURN(connectors::ConninfoServers named,
                            connectors::conninfo_servers(conninfo->get<std::string>()));
    const std::string refused = "source '" + definition.name + "': connection '" + connection.name +
                                "' sends its secret only to its allowed_hosts";
    if (named.service) {
        return Status(StatusCode::kPermissionDenied,
                      refused + "; conninfo names a service, whose servers cannot be checked");
    }
    if (named.servers.empty()) {
        return Status(StatusCode::kPermissionDenied,
                      refused + "; conninfo names no host (libpq's default server)");
    }
    for (const std::string& server : named.servers) {
        const bool allowed = std::any_of(
            connection.allowed_hosts.begin(), connection.allowed_hosts.end(),
            [&](std::string entry) {
                std::transform(entry.begin(), entry.end(), entry.begin(),
                               [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
                return entry == server || entry + ":5432" == server;
            });
        if (!allowed) {
            return Status(StatusCode::kPermissionDenied,
                          refused + "; conninfo names '" + server + "'");
        }
    }
    return Status();
}

}  // namespace

Result<std::string> source_secret(const std::filesystem::path& data_dir,
                                  const connectors::SourceDefinition& definition,
                                  const governance::SecretBox* secrets) {
    const std::string connection = connection_of(definition.config);
    if (connection.empty()) {
        return std::string();
    }
    std::unique_ptr<governance::SecretBox> own;
    if (secrets == nullptr) {
        SLUICE_ASSIGN_OR_RETURN(
            own, governance::SecretBox::load_or_create(
                     data_dir / std::string(governance::kSecretKeyFile), false));
        secrets = own.get();
    }
    SLUICE_ASSIGN_OR_RETURN(auto store,
                            agents::AgentStore::open(data_dir / governance::kCatalogFile,
                                                     *secrets));
    SLUICE_ASSIGN_OR_RETURN(agents::Connection found, store->connection(connection));
    SLUICE_RETURN_IF_ERROR(check_connection_hosts(definition, found));
    return found.secret;
}

Status authorize_source_connection(governance::Governance& gov,
                                   const governance::RequestContext& context, const json& config) {
    const std::string connection = connection_of(config);
    if (connection.empty()) {
        return Status();
    }
    return gov.authorizer().require(context, governance::Privilege::kUseConnection,
                                    SecurableType::kConnection, connection);
}

Result<std::map<std::string, std::string>> read_staged_bindings(
    const std::filesystem::path& data_dir) {
    std::map<std::string, std::string> out;
    const auto path = bindings_path(data_dir);
    std::ifstream in(path);
    if (!in) {
        return out;
    }
    std::stringstream text;
    text << in.rdbuf();
    json parsed = json::parse(text.str(), nullptr, false);
    if (parsed.is_discarded() || !parsed.is_object() || !parsed.contains("bindings") ||
        !parsed["bindings"].is_object()) {
        return data_loss(path.string() + ": expected {\"version\": 1, \"bindings\": {}}");
    }
    for (const auto& [source, index] : parsed["bindings"].items()) {
        if (!index.is_string()) {
            return data_loss(path.string() + ": bindings." + source + ": expected an index name");
        }
        out[source] = index.get<std::string>();
    }
    return out;
}

Status stage_binding(const std::filesystem::path& data_dir, const std::string& source,
                     const std::string& index) {
    SLUICE_RETURN_IF_ERROR(retrieval::validate_index_name(index));
    SLUICE_ASSIGN_OR_RETURN(auto bindings, read_staged_bindings(data_dir));
    bindings[source] = index;
    return write_staged(data_dir, bindings);
}

Status unstage_binding(const std::filesystem::path& data_dir, const std::string& source) {
    SLUICE_ASSIGN_OR_RETURN(auto bindings, read_staged_bindings(data_dir));
    if (bindings.erase(source) == 0) {
        return Status();
    }
    return write_staged(data_dir, bindings);
}

Result<std::size_t> migrate_source_bindings(governance::Governance& gov,
                                            connectors::SourceRegistry& registry,
                                            const std::filesystem::path& data_dir) {
    SLUICE_ASSIGN_OR_RETURN(auto staged, read_staged_bindings(data_dir));
    SLUICE_ASSIGN_OR_RETURN(auto definitions, registry.list());
    SLUICE_ASSIGN_OR_RETURN(auto objects, list_source_objects(gov.store()));
    std::map<std::string, std::string> known;  // name -> index, of the catalog's objects
    for (const auto& object : objects) {
        known[object.name] = object.index;
    }
    std::vector<std::string> missing;
    for (const auto& definition : definitions) {
        if (!known.contains(definition.name)) {
            missing.push_back(definition.name);
        }
    }
    const bool have_file = std::filesystem::exists(bindings_path(data_dir));
    if (missing.empty() && !have_file) {
        return std::size_t{0};
    }
    SLUICE_ASSIGN_OR_RETURN(governance::Principal owner, [&]() -> Result<governance::Principal> {
        auto admin = acting_admin(gov.store(), "");
        if (!admin.ok() && admin.status().code() == StatusCode::kNotFound) {
            return failed_precondition("sources wait for the catalog: " +
                                       admin.status().message());
        }
        return admin;
    }());
    if (!missing.empty()) {
        SLUICE_RETURN_IF_ERROR(
            ensure_source_schema(gov.store(), std::string(kDefaultSourceSchema), owner.id));
    }
    std::size_t created = 0;
    for (const auto& name : missing) {
        auto binding = staged.find(name);
        const std::string index = binding == staged.end() ? "" : binding->second;
        auto object = create_source_object(gov.store(), std::string(kDefaultSourceSchema), name,
                                           owner.id, index);
        governance::AuditEvent event;
        event.principal = owner.name;
        event.action = "source.migrate";
        event.securable = "table:" + std::string(kDefaultSourceSchema) + "." + name;
        event.result = object.ok() ? "ok" : "error";
        event.decided_by = object.ok() ? "" : object.status().to_string();
        event.details = json{{"source", name}, {"index", index}}.dump();
        SLUICE_RETURN_IF_ERROR(gov.audit().append(event));
        SLUICE_RETURN_IF_ERROR(object.status());
        log::info("sync", "source moved into the catalog",
                  {{"source", name}, {"object", object->full_name}, {"index", index}});
        ++created;
    }
    // A staged binding of a source already in the catalog is the newer word (the offline CLI
    // stages only while no admin exists, so this is the bind of an unmigrated source).
    for (const auto& [name, index] : staged) {
        if (auto it = known.find(name); it != known.end() && it->second != index) {
            SLUICE_RETURN_IF_ERROR(set_source_index(gov.store(), name, index));
        }
    }
    if (have_file) {
        std::error_code ec;
        std::filesystem::rename(bindings_path(data_dir),
                                data_dir / "sources" / "bindings.json.migrated", ec);
        if (ec) {
            return io_error("cannot retire " + bindings_path(data_dir).string() + ": " +
                            ec.message());
        }
    }
    return created;
}

}  // namespace sluice::app
