#include "app/index_catalog.h"

#include "app/governance_http.h"
#include "app/source_catalog.h"
#include "common/log.h"

namespace sluice::app {
namespace {

using governance::Privilege;
using governance::SecurableType;

constexpr std::string_view kStartupRequest = "startup";

// The admin that owns what start-up registers.
Result<governance::Principal> registering_admin(governance::Governance& gov) {
    auto bootstrap = gov.store().principal(std::string(governance::kBootstrapAdmin));
    if (bootstrap.ok() && bootstrap->is_admin) {
        return bootstrap;
    }
    SLUICE_ASSIGN_OR_RETURN(auto principals, gov.store().principals());
    for (const auto& principal : principals) {
        if (principal.is_admin && principal.kind != governance::PrincipalKind::kGroup) {
            return principal;
        }
    }
    return failed_precondition("no metastore admin to own the registered vector indexes");
}

// Creates the catalog and schema of `securable` (an index's full name) that are missing, owned
// by `owner_id`, each audited for `context`.
Status ensure_containers(governance::Governance& gov, const governance::RequestContext& context,
                         const std::string& securable) {
    SLUICE_ASSIGN_OR_RETURN(auto parts,
                            governance::split_full_name(SecurableType::kVectorIndex, securable));
    const std::pair<SecurableType, std::string> containers[] = {
        {SecurableType::kCatalog, parts[0]}, {SecurableType::kSchema, parts[0] + "." + parts[1]}};
    for (const auto& [type, name] : containers) {
        if (gov.store().securable(type, name).ok()) {
            continue;
        }
        auto created = gov.store().create_securable(
            type, name, context.principal_id, "created to hold vector indexes", {});
        if (!created.ok() && created.status().code() == StatusCode::kAlreadyExists) {
            continue;  // made by a concurrent request
        }
        SLUICE_RETURN_IF_ERROR(audit_action(
            gov, context, "securable.create",
            std::string(governance::securable_type_name(type)) + ":" + name, created.status(),
            "container of vector index '" + securable + "'"));
        SLUICE_RETURN_IF_ERROR(created.status());
    }
    return Status();
}

bool is_plain(const std::string& securable) {
    const std::string prefix = std::string(agents::kPlainIndexCatalog) + "." +
                               std::string(agents::kPlainIndexSchema) + ".";
    return securable.compare(0, prefix.size(), prefix) == 0;
}

std::string label(const std::string& securable) { return "vector_index:" + securable; }

}  // namespace

Status register_stored_indexes(governance::Governance& gov,
                               const retrieval::IndexManager& indexes) {
    std::optional<governance::RequestContext> context;
    for (const std::string& stored : indexes.list()) {
        auto securable = agents::index_securable_name(stored);
        if (!securable.ok()) {
            log::error("catalog", "a stored vector index has no catalog name; it is not served",
                       {{"index", stored}, {"error", securable.status().message()}});
            continue;
        }
        if (gov.store().securable(SecurableType::kVectorIndex, *securable).ok()) {
            continue;
        }
        if (!context) {
            SLUICE_ASSIGN_OR_RETURN(auto admin, registering_admin(gov));
            context = governance::RequestContext{admin.id, admin.name,
                                                 std::string(kStartupRequest), "", ""};
        }
        SLUICE_RETURN_IF_ERROR(ensure_containers(gov, *context, *securable));
        auto created = gov.store().create_securable(
            SecurableType::kVectorIndex, *securable, context->principal_id,
            "registered at start-up from the data directory's index '" + stored + "'", {});
        if (!created.ok() && created.status().code() == StatusCode::kAlreadyExists) {
            continue;  // registered a moment ago by another process (a command beside a server)
        }
        SLUICE_RETURN_IF_ERROR(audit_action(gov, *context, "securable.create", label(*securable),
                                            created.status(),
                                            "stored vector index '" + stored + "' registered"));
        SLUICE_RETURN_IF_ERROR(created.status());
        log::info("catalog", "registered a stored vector index",
                  {{"index", stored}, {"securable", *securable}, {"owner", context->principal}});
    }
    return Status();
}

Result<agents::IndexRef> create_index(governance::Governance& gov,
                                      retrieval::IndexManager& indexes,
                                      const governance::RequestContext& caller,
                                      const retrieval::IndexSettings& settings,
                                      const std::string& comment) {
    SLUICE_RETURN_IF_ERROR(retrieval::validate(settings));
    SLUICE_ASSIGN_OR_RETURN(std::string securable, agents::index_securable_name(settings.name));
    if (is_plain(securable)) {
        SLUICE_ASSIGN_OR_RETURN(bool admin, gov.authorizer().is_admin(caller.principal_id));
        if (admin) {
            SLUICE_RETURN_IF_ERROR(ensure_containers(gov, caller, securable));
        }
    }
    const std::string schema = securable.substr(0, securable.rfind('.'));
    SLUICE_RETURN_IF_ERROR(
        gov.authorizer().require(caller, Privilege::kCreateTable, SecurableType::kSchema, schema));
    // The catalog entry first: it is what decides who may use the name, so two creators racing
    // for one name are told apart here, before either writes files.
    auto registered = gov.store().create_securable(SecurableType::kVectorIndex, securable,
                                                   caller.principal_id, comment, {});
    SLUICE_RETURN_IF_ERROR(audit_action(gov, caller, "securable.create", label(securable),
                                        registered.status(), "index '" + settings.name + "'"));
    SLUICE_RETURN_IF_ERROR(registered.status());
    auto created = indexes.create(settings);
    if (!created.ok()) {
        Status undone = gov.store().delete_securable(SecurableType::kVectorIndex, securable, true);
        Status audited = audit_action(gov, caller, "securable.delete", label(securable), undone,
                                      "index creation failed: " + created.status().message());
        if (!undone.ok() || !audited.ok()) {
            log::error("catalog", "cannot undo the catalog entry of an index not created",
                       {{"securable", securable},
                        {"error", (undone.ok() ? audited : undone).message()}});
        }
        return created.status();
    }
    return agents::IndexRef{std::move(securable), std::move(*created)};
}

Status drop_index(governance::Governance& gov, retrieval::IndexManager& indexes,
                  const governance::RequestContext& caller, const std::string& name) {
    SLUICE_ASSIGN_OR_RETURN(agents::IndexRef found,
                            agents::open_index(gov.authorizer(), caller, Privilege::kManage,
                                               indexes, name));
    return remove_index(gov, indexes, caller, std::move(found));
}

Status remove_index(governance::Governance& gov, retrieval::IndexManager& indexes,
                    const governance::RequestContext& caller, agents::IndexRef found) {
    const std::string stored = found.index->settings().name;
    // A source's sync holds the index it feeds for as long as it runs, and would write on into
    // a removed index: the source goes (or is bound elsewhere) first.
    SLUICE_ASSIGN_OR_RETURN(std::vector<SourceObject> sources, list_source_objects(gov.store()));
    for (const SourceObject& source : sources) {
        if (source.index.empty()) {
            continue;
        }
        bool feeds = source.index == stored || source.index == found.securable;
        if (!feeds) {
            auto bound = agents::find_index(indexes, source.index);
            feeds = bound.ok() && bound->index == found.index;
        }
        if (feeds) {
            return failed_precondition("index '" + found.securable + "' is fed by source '" +
                                       source.name +
                                       "': remove the source or bind it to another index first");
        }
    }
    found.index.reset();
    Status dropped = indexes.drop(stored);
    SLUICE_RETURN_IF_ERROR(dropped);
    Status deleted =
        gov.store().delete_securable(SecurableType::kVectorIndex, found.securable, true);
    SLUICE_RETURN_IF_ERROR(audit_action(gov, caller, "securable.delete", label(found.securable),
                                        deleted, "index '" + stored + "' and its files"));
    return deleted;
}

}  // namespace sluice::app
