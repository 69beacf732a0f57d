#include "app/catalog_routes.h"

#include <array>

#include "app/eval_access.h"
#include "app/governance_http.h"
#include "app/http_errors.h"
#include "app/policy_routes.h"
#include "app/request_members.h"
#include "app/source_catalog.h"

namespace sluice::app {
namespace {

using governance::Decision;
using governance::DecisionSource;
using governance::Governance;
using governance::PermissionChange;
using governance::Privilege;
using governance::SecurableType;
using nlohmann::json;

constexpr std::string_view kBase = "/api/2.1/unity-catalog";

struct Collection {
    std::string_view path;  // URL segment
    std::string_view key;   // list response key
    SecurableType type;
    Privilege create;  // needed on the parent
};

constexpr std::array<Collection, 9> kCollections = {{
    {"catalogs", "catalogs", SecurableType::kCatalog, Privilege::kCreateCatalog},
    {"schemas", "schemas", SecurableType::kSchema, Privilege::kCreateSchema},
    {"tables", "tables", SecurableType::kTable, Privilege::kCreateTable},
    {"volumes", "volumes", SecurableType::kVolume, Privilege::kCreateVolume},
    // Databricks treats a vector index as table-like: creating one needs CREATE_TABLE, as on
    // /api/2.0/vector-search/indexes (app/index_catalog.h).
    {"vector-indexes", "vector_indexes", SecurableType::kVectorIndex, Privilege::kCreateTable},
    {"functions", "functions", SecurableType::kFunction, Privilege::kCreateFunction},
    {"models", "registered_models", SecurableType::kModel, Privilege::kCreateModel},
    {"agents", "agents", SecurableType::kAgent, Privilege::kCreateAgent},
    {"connections", "connections", SecurableType::kConnection, Privilege::kCreateConnection},
}};

std::string parent_of(SecurableType type, const std::string& full_name) {
    if (governance::name_depth(type) <= 1) {
        return "";
    }
    return full_name.substr(0, full_name.rfind('.'));
}

std::string label(SecurableType type, const std::string& full_name) {
    return std::string(governance::securable_type_name(type)) + ":" + full_name;
}

// The full name a create request names: name, and catalog_name/schema_name as the type needs.
Result<std::string> full_name_from(const Collection& c, const json& body) {
    SLUICE_ASSIGN_OR_RETURN(std::string name, string_field(body, "name"));
    int depth = governance::name_depth(c.type);
    std::string full = name;
    if (depth >= 2) {
        SLUICE_ASSIGN_OR_RETURN(std::string catalog, string_field(body, "catalog_name"));
        if (depth == 3) {
            SLUICE_ASSIGN_OR_RETURN(std::string schema, string_field(body, "schema_name"));
            full = catalog + "." + schema + "." + name;
        } else {
            full = catalog + "." + name;
        }
    }
    SLUICE_RETURN_IF_ERROR(governance::split_full_name(c.type, full).status());
    return full;
}

Result<std::map<std::string, std::string>> tags_from(const json& body) {
    std::map<std::string, std::string> tags;
    if (!body.contains("tags")) {
        return tags;
    }
    if (!body["tags"].is_object()) {
        return invalid_argument("request body: \"tags\" must be an object of strings");
    }
    for (const auto& [key, value] : body["tags"].items()) {
        if (!value.is_string()) {
            return invalid_argument("request body: tag \"" + key + "\" must be a string");
        }
        tags[key] = value.get<std::string>();
    }
    return tags;
}

// A table tagged kind=source is a source's catalog object, and its tag `index` is the index the
// source's sync writes into (app/source_catalog.h). Only the sources API may set them: through
// this API, a source's owner could bind it to an index without MODIFY on that index, and anyone
// able to create a table could pose as another source of the same name.
bool tags_make_source(const std::map<std::string, std::string>& tags) {
    auto kind = tags.find("kind");
    return kind != tags.end() && kind->second == kSourceTag;
}

// A table tagged kind=eval_set is an evaluation set's catalog object: its grants decide who reads
// the set's versions and runs (app/eval_access.h). Only the evaluation API makes one, so that no
// one can pose as a set whose data is there already (imported offline, or left by a dropped
// table), and a set's tag stays.
Status check_eval_set_tag(const std::map<std::string, std::string>* current,
                          const std::map<std::string, std::string>& wanted) {
    auto is_eval_set = [](const std::map<std::string, std::string>& tags) {
        auto kind = tags.find("kind");
        return kind != tags.end() && kind->second == kEvalSetTag;
    };
    const bool was = current != nullptr && is_eval_set(*current);
    if (was != is_eval_set(wanted)) {
        return invalid_argument("request body: tag \"kind\": \"" + std::string(kEvalSetTag) +
                                "\" marks an evaluation set's catalog object, made by POST "
                                "/api/eval/sets; it is neither set nor removed here");
    }
    return Status();
}

Status check_source_tags(SecurableType type, const std::map<std::string, std::string>* current,
                         const std::map<std::string, std::string>& wanted) {
    if (type != SecurableType::kTable) {
        return Status();
    }
    SLUICE_RETURN_IF_ERROR(check_eval_set_tag(current, wanted));
    const bool was_source = current != nullptr && tags_make_source(*current);
    if (!was_source) {
        if (tags_make_source(wanted)) {
            return invalid_argument(
                "request body: tag \"kind\": \"" + std::string(kSourceTag) +
                "\" marks a source's catalog object; create sources with POST /api/sources");
        }
        return Status();
    }
    auto value = [](const std::map<std::string, std::string>& tags, const std::string& key) {
        auto it = tags.find(key);
        return it == tags.end() ? std::optional<std::string>() : std::optional(it->second);
    };
    for (const std::string key : {"kind", "index"}) {
        if (value(*current, key) != value(wanted, key)) {
            return invalid_argument("request body: tag \"" + key +
                                    "\" of a source is kept by the sources API (bind or unbind "
                                    "with PATCH /api/sources/{name}); send it unchanged");
        }
    }
    return Status();
}

void create(Governance& gov, const Collection& c, const RequestInfo& info,
            const httplib::Request& req, httplib::Response& res) {
    auto context = context_of(info);
    auto body = parse_json_body(req);
    if (!body.ok()) {
        return send_status(res, body.status(), info.request_id);
    }
    auto full_name = full_name_from(c, *body);
    auto tags = full_name.ok() ? tags_from(*body) : Result<std::map<std::string, std::string>>(
                                                        full_name.status());
    if (!tags.ok()) {
        return send_status(res, tags.status(), info.request_id);
    }
    if (Status kept = check_source_tags(c.type, nullptr, *tags); !kept.ok()) {
        return send_status(res, kept, info.request_id);
    }
    SecurableType container = *governance::parent_type(c.type);
    Status allowed = gov.authorizer().require(context, c.create, container,
                                              parent_of(c.type, *full_name));
    if (!allowed.ok()) {
        return send_status(res, allowed, info.request_id);
    }
    auto comment = string_field_or(*body, "comment", "");
    if (!comment.ok()) {
        return send_status(res, comment.status(), info.request_id);
    }
    std::vector<governance::ColumnInfo> columns;
    if (c.type == SecurableType::kTable && body->contains("columns")) {
        auto parsed = columns_from((*body)["columns"]);
        if (!parsed.ok()) {
            return send_status(res, parsed.status(), info.request_id);
        }
        columns = std::move(*parsed);
    }
    auto created =
        gov.store().create_securable(c.type, *full_name, context.principal_id, *comment, *tags);
    Status columns_stored;
    if (created.ok() && !columns.empty()) {
        // Names were checked before the table was created; what can fail here is storage. The
        // table then stays without columns (PUT .../columns sets them), and the record says so.
        columns_stored = gov.policies().set_columns(*full_name, columns);
    }
    Status audited = audit_action(
        gov, context, "securable.create", label(c.type, *full_name), created.status(),
        columns.empty() ? ""
                        : std::to_string(columns.size()) + " columns" +
                              (columns_stored.ok() ? "" : " not stored: " + columns_stored.message()));
    if (created.ok() && audited.ok() && !columns_stored.ok()) {
        return send_status(res, columns_stored, info.request_id);
    }
    if (!created.ok() || !audited.ok()) {
        return send_status(res, created.ok() ? audited : created.status(), info.request_id);
    }
    send_json(res, securable_json(*created));
}

// A securable's catalog entry; a vector index's with what its stored index says of itself.
json entry_json(const governance::Securable& securable, const Collection& c,
                const DescribeStoredIndex& describe_stored_index) {
    json out = securable_json(securable);
    if (c.type == SecurableType::kVectorIndex && describe_stored_index) {
        if (auto stored = describe_stored_index(securable.full_name)) {
            out.update(*stored);
        }
    }
    return out;
}

void list(Governance& gov, const Collection& c, const DescribeStoredIndex& describe_stored_index,
          const RequestInfo& info, const httplib::Request& req, httplib::Response& res) {
    auto context = context_of(info);
    std::string parent;
    int depth = governance::name_depth(c.type);
    if (depth >= 2) {
        parent = req.get_param_value("catalog_name");
        if (depth == 3) {
            parent += "." + req.get_param_value("schema_name");
        }
        if (parent.empty() || parent.front() == '.' || parent.back() == '.') {
            return send_status(res,
                               invalid_argument("query parameters catalog_name" +
                                                std::string(depth == 3 ? " and schema_name" : "") +
                                                " are required"),
                               info.request_id);
        }
    }
    auto items = gov.store().list_securables(c.type, parent);
    if (!items.ok()) {
        return send_status(res, items.status(), info.request_id);
    }
    // Listing shows what the caller may BROWSE; the list request itself is audited once rather
    // than one record per item.
    json out = json::array();
    for (const auto& item : *items) {
        auto decision =
            gov.authorizer().check(context.principal_id, Privilege::kBrowse, c.type, item.full_name);
        if (decision.ok() && decision->allowed) {
            out.push_back(entry_json(item, c, describe_stored_index));
        }
    }
    Status audited = audit_action(gov, context, "securable.list",
                                  label(*governance::parent_type(c.type), parent), Status(),
                                  std::to_string(out.size()) + " of " +
                                      std::to_string(items->size()) + " visible");
    if (!audited.ok()) {
        return send_status(res, audited, info.request_id);
    }
    send_json(res, json{{std::string(c.key), out}});
}

void get_one(Governance& gov, const Collection& c,
             const DescribeStoredIndex& describe_stored_index, const RequestInfo& info,
             const httplib::Request& req, httplib::Response& res) {
    auto context = context_of(info);
    std::string full_name = req.matches[1].str();
    Status allowed = gov.authorizer().require(context, Privilege::kBrowse, c.type, full_name);
    if (!allowed.ok()) {
        return send_status(res, allowed, info.request_id);
    }
    auto found = gov.store().securable(c.type, full_name);
    if (!found.ok()) {
        return send_status(res, found.status(), info.request_id);
    }
    send_json(res, entry_json(*found, c, describe_stored_index));
}

void update(Governance& gov, const Collection& c, const RequestInfo& info,
            const httplib::Request& req, httplib::Response& res) {
    auto context = context_of(info);
    std::string full_name = req.matches[1].str();
    auto body = parse_json_body(req);
    if (!body.ok()) {
        return send_status(res, body.status(), info.request_id);
    }
    Status allowed = gov.authorizer().require(context, Privilege::kManage, c.type, full_name);
    if (!allowed.ok()) {
        return send_status(res, allowed, info.request_id);
    }
    std::optional<std::int64_t> owner;
    if (body->contains("owner")) {
        auto name = string_field(*body, "owner");
        auto principal = name.ok() ? gov.store().principal(*name)
                                   : Result<governance::Principal>(name.status());
        if (!principal.ok()) {
            return send_status(res, principal.status(), info.request_id);
        }
        owner = principal->id;
    }
    std::optional<std::string> comment;
    if (body->contains("comment")) {
        auto text = string_field(*body, "comment");
        if (!text.ok()) {
            return send_status(res, text.status(), info.request_id);
        }
        comment = *text;
    }
    std::optional<std::map<std::string, std::string>> tags;
    if (body->contains("tags")) {
        auto parsed = tags_from(*body);
        if (!parsed.ok()) {
            return send_status(res, parsed.status(), info.request_id);
        }
        tags = *parsed;
    }
    auto updated = [&]() -> Result<governance::Securable> {
        if (tags) {
            SLUICE_ASSIGN_OR_RETURN(auto current, gov.store().securable(c.type, full_name));
            SLUICE_RETURN_IF_ERROR(check_source_tags(c.type, &current.tags, *tags));
        }
        return gov.store().update_securable(c.type, full_name, owner, comment, tags);
    }();
    Status audited = audit_action(gov, context, "securable.update", label(c.type, full_name),
                                  updated.status(), body->dump());
    if (!updated.ok() || !audited.ok()) {
        return send_status(res, updated.ok() ? audited : updated.status(), info.request_id);
    }
    send_json(res, securable_json(*updated));
}

// Catalog objects that stand for more than their entry, which this API does not delete: a
// source's table (its definition and synced state would stay, to take the table back unbound at
// the next reconcile), an evaluation set's table (its versions would stay, for an admin to
// reclaim) and, below a catalog or schema deleted with force, a vector index (its files would
// stay, to be registered again at start, owned by the admin). Each goes through its own API.
Status deleted_elsewhere(const governance::Securable& object) {
    if (object.type == SecurableType::kTable && tags_make_source(object.tags)) {
        return failed_precondition("table '" + object.full_name + "' is source '" + object.name +
                                   "': remove it with DELETE /api/sources/" + object.name +
                                   " first");
    }
    auto kind = object.tags.find("kind");
    if (object.type == SecurableType::kTable && kind != object.tags.end() &&
        kind->second == kEvalSetTag) {
        return failed_precondition("table '" + object.full_name +
                                   "' is an evaluation set: delete it with DELETE "
                                   "/api/eval/sets/" +
                                   object.full_name + " first");
    }
    return Status();
}

Status keep_below(const governance::Securable& below) {
    SLUICE_RETURN_IF_ERROR(deleted_elsewhere(below));
    if (below.type == SecurableType::kVectorIndex) {
        return failed_precondition("vector index '" + below.full_name +
                                   "' is below it: delete it first (DELETE "
                                   "/api/2.1/unity-catalog/vector-indexes/" +
                                   below.full_name + ")");
    }
    return Status();
}

void remove(Governance& gov, const Collection& c, const DropStoredIndex& drop_stored_index,
            const RequestInfo& info, const httplib::Request& req, httplib::Response& res) {
    auto context = context_of(info);
    std::string full_name = req.matches[1].str();
    Status allowed = gov.authorizer().require(context, Privilege::kManage, c.type, full_name);
    if (!allowed.ok()) {
        return send_status(res, allowed, info.request_id);
    }
    // A vector index goes with its files: a catalog entry deleted alone would leave an index
    // that start-up registers again, owned by the admin.
    if (c.type == SecurableType::kVectorIndex && drop_stored_index) {
        auto dropped = drop_stored_index(context, full_name);
        if (!dropped.ok()) {
            return send_status(res, dropped.status(), info.request_id);
        }
        if (*dropped) {
            return send_json(res, json::object());
        }
    }
    bool force = req.get_param_value("force") == "true";
    Status deleted = [&]() -> Status {
        if (c.type == SecurableType::kTable) {
            SLUICE_ASSIGN_OR_RETURN(auto current, gov.store().securable(c.type, full_name));
            SLUICE_RETURN_IF_ERROR(deleted_elsewhere(current));
        }
        return gov.store().delete_securable(c.type, full_name, force, keep_below);
    }();
    Status audited = audit_action(gov, context, "securable.delete", label(c.type, full_name),
                                  deleted, force ? "force" : "");
    if (!deleted.ok() || !audited.ok()) {
        return send_status(res, deleted.ok() ? audited : deleted, info.request_id);
    }
    send_json(res, json::object());
}

Result<governance::Securable> target_of(Governance& gov, const httplib::Request& req) {
    SLUICE_ASSIGN_OR_RETURN(SecurableType type,
                            governance::parse_securable_type(req.matches[1].str()));
    std::string full_name = type == SecurableType::kMetastore ? "" : req.matches[2].str();
    return gov.store().securable(type, full_name);
}

json assignments_json(const std::vector<governance::GrantRow>& grants,
                      const std::string& only_principal) {
    std::map<std::string, json> by_principal;
    for (const auto& grant : grants) {
        if (!only_principal.empty() && grant.principal != only_principal) {
            continue;
        }
        json& privileges = by_principal[grant.principal];
        if (privileges.is_null()) {
            privileges = json::array();
        }
        privileges.push_back(std::string(governance::privilege_name(grant.privilege)));
    }
    json out = json::array();
    for (auto& [principal, privileges] : by_principal) {
        out.push_back({{"principal", principal}, {"privileges", privileges}});
    }
    return json{{"privilege_assignments", out}};
}

Result<std::vector<PermissionChange>> changes_from(const json& body) {
    if (!body.is_object() || !body.contains("changes") || !body["changes"].is_array()) {
        return invalid_argument("request body: \"changes\" must be an array");
    }
    std::vector<PermissionChange> changes;
    for (const auto& item : body["changes"]) {
        PermissionChange change;
        SLUICE_ASSIGN_OR_RETURN(change.principal, string_field(item, "principal"));
        // A misspelt "remove" ("revoke") would otherwise answer 200 and leave the grant.
        SLUICE_RETURN_IF_ERROR(check_keys(item, {"principal", "add", "remove"}, {})
                                   .with_context("request body: changes[]"));
        for (const auto& [field, list] : {std::pair{"add", &change.add},
                                          std::pair{"remove", &change.remove}}) {
            if (!item.contains(field)) {
                continue;
            }
            if (!item[field].is_array()) {
                return invalid_argument(std::string("request body: \"") + field +
                                        "\" must be an array of privileges");
            }
            for (const auto& name : item[field]) {
                if (!name.is_string()) {
                    return invalid_argument("request body: privileges must be strings");
                }
                SLUICE_ASSIGN_OR_RETURN(Privilege p, governance::parse_privilege(name.get<std::string>()));
                list->push_back(p);
            }
        }
        changes.push_back(std::move(change));
    }
    return changes;
}

void get_permissions(Governance& gov, const RequestInfo& info, const httplib::Request& req,
                     httplib::Response& res) {
    auto context = context_of(info);
    auto target = target_of(gov, req);
    Status allowed = target.ok() ? (target->type == SecurableType::kMetastore
                                        ? require_admin(gov, context, "permissions.read")
                                        : gov.authorizer().require(context, Privilege::kBrowse,
                                                                   target->type, target->full_name))
                                 : target.status();
    if (!allowed.ok()) {
        return send_status(res, allowed, info.request_id);
    }
    auto grants = gov.store().grants_on(target->id);
    if (!grants.ok()) {
        return send_status(res, grants.status(), info.request_id);
    }
    send_json(res, assignments_json(*grants, req.get_param_value("principal")));
}

void update_permissions(Governance& gov, const RequestInfo& info, const httplib::Request& req,
                        httplib::Response& res) {
    auto context = context_of(info);
    auto body = parse_json_body(req);
    auto target = body.ok() ? target_of(gov, req)
                            : Result<governance::Securable>(body.status());
    auto changes = target.ok() ? changes_from(*body)
                               : Result<std::vector<PermissionChange>>(target.status());
    if (!changes.ok()) {
        return send_status(res, changes.status(), info.request_id);
    }
    Status allowed = target->type == SecurableType::kMetastore
                         ? require_admin(gov, context, "permissions.update")
                         : gov.authorizer().require(context, Privilege::kManage, target->type,
                                                    target->full_name);
    if (!allowed.ok()) {
        return send_status(res, allowed, info.request_id);
    }
    Status applied =
        gov.store().update_permissions(target->id, target->type, *changes, context.principal_id);
    Status audited = audit_action(gov, context, "grant.update",
                                  label(target->type, target->full_name), applied, body->dump());
    if (!applied.ok() || !audited.ok()) {
        return send_status(res, applied.ok() ? audited : applied, info.request_id);
    }
    auto grants = gov.store().grants_on(target->id);
    if (!grants.ok()) {
        return send_status(res, grants.status(), info.request_id);
    }
    send_json(res, assignments_json(*grants, ""));
}

std::string_view source_name(DecisionSource source) {
    switch (source) {
        case DecisionSource::kAdmin: return "metastore_admin";
        case DecisionSource::kOwner: return "ownership";
        case DecisionSource::kGrant: return "grant";
        case DecisionSource::kNone: return "none";
    }
    return "none";
}

void effective_permissions(Governance& gov, const RequestInfo& info, const httplib::Request& req,
                           httplib::Response& res) {
    auto context = context_of(info);
    auto target = target_of(gov, req);
    if (!target.ok()) {
        return send_status(res, target.status(), info.request_id);
    }
    std::string who = req.has_param("principal") ? req.get_param_value("principal")
                                                 : context.principal;
    // Anyone may ask about themselves; asking about others needs MANAGE on the securable.
    if (who != context.principal) {
        Status allowed = target->type == SecurableType::kMetastore
                             ? require_admin(gov, context, "effective_permissions.read")
                             : gov.authorizer().require(context, Privilege::kManage, target->type,
                                                        target->full_name);
        if (!allowed.ok()) {
            return send_status(res, allowed, info.request_id);
        }
    }
    auto principal = gov.store().principal(who);
    auto decisions = principal.ok()
                         ? gov.authorizer().effective(principal->id, target->type,
                                                      target->full_name)
                         : Result<std::vector<std::pair<Privilege, Decision>>>(principal.status());
    if (!decisions.ok()) {
        return send_status(res, decisions.status(), info.request_id);
    }
    json privileges = json::array();
    for (const auto& [privilege, d] : *decisions) {
        json entry = {{"privilege", std::string(governance::privilege_name(privilege))},
                      {"allowed", d.allowed},
                      {"source", std::string(source_name(d.source))},
                      {"reason", d.reason}};
        if (d.source == DecisionSource::kGrant || d.source == DecisionSource::kOwner) {
            entry["inherited_from_type"] = std::string(governance::securable_type_name(d.on_type));
            entry["inherited_from_name"] = d.on_name;
            entry["via_principal"] = d.via_principal;
        }
        if (d.source == DecisionSource::kAdmin) {
            entry["via_principal"] = d.via_principal;
        }
        privileges.push_back(entry);
    }
    send_json(res, json{{"privilege_assignments",
                         json::array({{{"principal", who}, {"privileges", privileges}}})}});
}

}  // namespace

void add_catalog_routes(HttpServer& server, Governance& gov, DropStoredIndex drop_stored_index,
                        DescribeStoredIndex describe_stored_index) {
    const std::string base(kBase);
    for (const Collection& c : kCollections) {
        std::string collection = base + "/" + std::string(c.path);
        std::string item = collection + "/([^/]+)";
        server.route("POST", collection,
                     [&gov, &c](const RequestInfo& i, const httplib::Request& q,
                                httplib::Response& r) { create(gov, c, i, q, r); });
        server.route("GET", collection,
                     [&gov, &c, describe_stored_index](const RequestInfo& i,
                                                       const httplib::Request& q,
                                                       httplib::Response& r) {
                         list(gov, c, describe_stored_index, i, q, r);
                     });
        server.route("GET", item,
                     [&gov, &c, describe_stored_index](const RequestInfo& i,
                                                       const httplib::Request& q,
                                                       httplib::Response& r) {
                         get_one(gov, c, describe_stored_index, i, q, r);
                     });
        server.route("PATCH", item,
                     [&gov, &c](const RequestInfo& i, const httplib::Request& q,
                                httplib::Response& r) { update(gov, c, i, q, r); });
        server.route("DELETE", item,
                     [&gov, &c, drop_stored_index](const RequestInfo& i,
                                                   const httplib::Request& q,
                                                   httplib::Response& r) {
                         remove(gov, c, drop_stored_index, i, q, r);
                     });
    }
    std::string permissions = base + "/permissions/([a-z_A-Z]+)/([^/]+)";
    server.route("GET", permissions,
                 [&gov](const RequestInfo& i, const httplib::Request& q, httplib::Response& r) {
                     get_permissions(gov, i, q, r);
                 });
    server.route("PATCH", permissions,
                 [&gov](const RequestInfo& i, const httplib::Request& q, httplib::Response& r) {
                     update_permissions(gov, i, q, r);
                 });
    server.route("GET", base + "/effective-permissions/([a-z_A-Z]+)/([^/]+)",
                 [&gov](const RequestInfo& i, const httplib::Request& q, httplib::Response& r) {
                     effective_permissions(gov, i, q, r);
                 });
}

}  // namespace sluice::app
