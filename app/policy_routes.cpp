#include "app/policy_routes.h"

#include "app/governance_http.h"
#include "app/http_errors.h"

namespace sluice::app {
namespace {

using governance::Governance;
using governance::Privilege;
using governance::RequestContext;
using governance::SecurableType;
using nlohmann::json;

const std::string kTables = "/api/2.1/unity-catalog/tables/([^/]+)";

using Handler = std::function<Status(Governance&, const RequestContext&, const httplib::Request&,
                                     httplib::Response&)>;

void add(HttpServer& server, Governance& gov, const std::string& method,
         const std::string& pattern, Handler handler) {
    server.route(method, pattern,
                 [&gov, handler = std::move(handler)](const RequestInfo& info,
                                                      const httplib::Request& req,
                                                      httplib::Response& res) {
                     Status status = handler(gov, context_of(info), req, res);
                     if (!status.ok()) {
                         send_status(res, status, info.request_id);
                     }
                 });
}

std::string label(const std::string& table) { return "table:" + table; }

Status show(Governance& gov, const RequestContext& ctx, const httplib::Request& req,
            httplib::Response& res) {
    std::string table = req.matches[1].str();
    SLUICE_RETURN_IF_ERROR(
        gov.authorizer().require(ctx, Privilege::kBrowse, SecurableType::kTable, table));
    SLUICE_ASSIGN_OR_RETURN(auto columns, gov.policies().columns(table));
    SLUICE_ASSIGN_OR_RETURN(auto policies, gov.policies().list(table));
    json cols = json::array();
    for (const auto& c : columns) {
        cols.push_back({{"name", c.name}, {"type_name", c.type_name}});
    }
    json filter = nullptr;
    json masks = json::array();
    for (const auto& p : policies) {
        json entry = {{"expression", p.expression},
                      {"created_by", p.created_by},
                      {"created_at", p.created_at_ms}};
        if (p.column.empty()) {
            filter = entry;
        } else {
            entry["column"] = p.column;
            masks.push_back(entry);
        }
    }
    send_json(res, json{{"full_name", table},
                        {"columns", cols},
                        {"row_filter", filter},
                        {"column_masks", masks}});
    return Status();
}

Status put_columns(Governance& gov, const RequestContext& ctx, const httplib::Request& req,
                   httplib::Response& res) {
    std::string table = req.matches[1].str();
    SLUICE_ASSIGN_OR_RETURN(json body, parse_json_body(req));
    if (!body.is_object() || !body.contains("columns")) {
        return invalid_argument("request body: \"columns\" is required");
    }
    SLUICE_ASSIGN_OR_RETURN(auto columns, columns_from(body["columns"]));
    SLUICE_RETURN_IF_ERROR(
        gov.authorizer().require(ctx, Privilege::kManage, SecurableType::kTable, table));
    Status stored = gov.policies().set_columns(table, columns);
    SLUICE_RETURN_IF_ERROR(audit_action(gov, ctx, "table.columns", label(table), stored,
                                        std::to_string(columns.size()) + " columns"));
    SLUICE_RETURN_IF_ERROR(stored);
    return show(gov, ctx, req, res);
}

Status put_policy(Governance& gov, const RequestContext& ctx, const httplib::Request& req,
                  httplib::Response& res, bool mask) {
    std::string table = req.matches[1].str();
    std::string column = mask ? req.matches[2].str() : "";
    SLUICE_ASSIGN_OR_RETURN(json body, parse_json_body(req));
    SLUICE_ASSIGN_OR_RETURN(std::string expression, string_field(body, "expression"));
    SLUICE_RETURN_IF_ERROR(
        gov.authorizer().require(ctx, Privilege::kManage, SecurableType::kTable, table));
    Status stored = mask ? gov.policies().set_column_mask(table, column, expression, ctx.principal)
                         : gov.policies().set_row_filter(table, expression, ctx.principal);
    SLUICE_RETURN_IF_ERROR(audit_action(gov, ctx, mask ? "policy.column_mask" : "policy.row_filter",
                                        label(table), stored,
                                        mask ? "column " + column + ": " + expression : expression));
    SLUICE_RETURN_IF_ERROR(stored);
    return show(gov, ctx, req, res);
}

Status delete_policy(Governance& gov, const RequestContext& ctx, const httplib::Request& req,
                     httplib::Response& res, bool mask) {
    std::string table = req.matches[1].str();
    std::string column = mask ? req.matches[2].str() : "";
    SLUICE_RETURN_IF_ERROR(
        gov.authorizer().require(ctx, Privilege::kManage, SecurableType::kTable, table));
    Status removed = gov.policies().remove(table, column);
    SLUICE_RETURN_IF_ERROR(audit_action(gov, ctx,
                                        mask ? "policy.column_mask.delete"
                                             : "policy.row_filter.delete",
                                        label(table), removed, column));
    SLUICE_RETURN_IF_ERROR(removed);
    send_json(res, json::object());
    return Status();
}

}  // namespace

Result<std::vector<governance::ColumnInfo>> columns_from(const json& columns) {
    if (!columns.is_array()) {
        return invalid_argument("request body: \"columns\" must be an array");
    }
    std::vector<governance::ColumnInfo> out;
    for (const json& c : columns) {
        governance::ColumnInfo info;
        SLUICE_ASSIGN_OR_RETURN(info.name, string_field(c, "name"));
        info.type_name = c.is_object() && c.contains("type_name") && c["type_name"].is_string()
                             ? c["type_name"].get<std::string>()
                             : "";
        out.push_back(std::move(info));
    }
    SLUICE_RETURN_IF_ERROR(governance::validate_columns(out));
    return out;
}

void add_policy_routes(HttpServer& server, Governance& gov) {
    add(server, gov, "GET", kTables + "/policies", show);
    add(server, gov, "PUT", kTables + "/columns", put_columns);
    for (bool mask : {false, true}) {
        std::string path = kTables + (mask ? "/column-masks/([A-Za-z0-9_]+)" : "/row-filter");
        add(server, gov, "PUT", path,
            [mask](Governance& g, const RequestContext& c, const httplib::Request& q,
                   httplib::Response& r) { return put_policy(g, c, q, r, mask); });
        add(server, gov, "DELETE", path,
            [mask](Governance& g, const RequestContext& c, const httplib::Request& q,
                   httplib::Response& r) { return delete_policy(g, c, q, r, mask); });
    }
}

}  // namespace sluice::app
