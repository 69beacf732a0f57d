#include "governance/governance.h"

namespace sluice::governance {

Governance::Governance(std::filesystem::path data_dir, std::unique_ptr<Store> store,
                       std::unique_ptr<AuditLog> audit)
    : data_dir_(std::move(data_dir)), store_(std::move(store)), audit_(std::move(audit)),
      authorizer_(std::make_unique<Authorizer>(*store_, *audit_)) {}

Governance::~Governance() {
    // Users of the audit log go first; the log goes after them and signs its head.
    policies_.reset();
    guardrails_.reset();
    lineage_.reset();
    usage_.reset();
    endpoints_.reset();
    authorizer_.reset();
    audit_.reset();
}

Result<std::unique_ptr<Governance>> Governance::open(const std::filesystem::path& data_dir,
                                                     GovernanceOptions options) {
    std::filesystem::path db_path = data_dir / kCatalogFile;
    SLUICE_ASSIGN_OR_RETURN(auto store, Store::open(db_path));
    SLUICE_ASSIGN_OR_RETURN(auto audit,
                            AuditLog::open(db_path, data_dir / kSigningKeyFile, options.audit));
    auto gov = std::make_unique<Governance>(data_dir, std::move(store), std::move(audit));
    SLUICE_ASSIGN_OR_RETURN(gov->endpoints_, Endpoints::open(db_path));
    SLUICE_ASSIGN_OR_RETURN(gov->usage_, Usage::open(db_path, *gov->store_, *gov->authorizer_,
                                                     *gov->audit_, *gov->endpoints_));
    SLUICE_ASSIGN_OR_RETURN(gov->lineage_,
                            Lineage::open(db_path, *gov->authorizer_, *gov->audit_));
    gov->guardrails_ = std::make_unique<Guardrails>(*gov->endpoints_, *gov->audit_);
    SLUICE_ASSIGN_OR_RETURN(gov->policies_,
                            Policies::open(db_path, *gov->store_, *gov->authorizer_));
    const bool default_key = options.secret_key_file.empty();
    SLUICE_ASSIGN_OR_RETURN(
        gov->secrets_,
        SecretBox::load_or_create(default_key ? data_dir / kSecretKeyFile : options.secret_key_file,
                                  default_key));
    return gov;
}

Result<std::optional<NewToken>> Governance::bootstrap_admin() {
    SLUICE_ASSIGN_OR_RETURN(auto existing, store_->principals());
    if (!existing.empty()) {
        return std::optional<NewToken>();
    }
    SLUICE_ASSIGN_OR_RETURN(Principal admin, store_->create_principal(
                                                 std::string(kBootstrapAdmin),
                                                 PrincipalKind::kUser, true));
    SLUICE_ASSIGN_OR_RETURN(NewToken token,
                            store_->create_token(admin.id, "created at first start", std::nullopt));
    SLUICE_RETURN_IF_ERROR(audit_->append(AuditEvent{.principal = admin.name,
                                                     .action = "bootstrap.admin",
                                                     .securable = "metastore:",
                                                     .result = "ok",
                                                     .token_id = token.info.id,
                                                     .decided_by = "first start of an empty "
                                                                   "data directory"}));
    return std::optional<NewToken>(std::move(token));
}

Result<RequestContext> Governance::authenticate(const std::string& authorization_header,
                                                const std::string& request_id,
                                                const std::string& client_address,
                                                bool defer_audit) {
    AuditEvent event{.action = "authenticate",
                     .request_id = request_id,
                     .client = client_address};
    static constexpr std::string_view kScheme = "Bearer ";
    Result<Authentication> auth = Status(StatusCode::kUnauthenticated,
                                         "missing bearer token: send Authorization: Bearer slc_...");
    if (authorization_header.size() > kScheme.size() &&
        authorization_header.compare(0, kScheme.size(), kScheme) == 0) {
        auth = store_->authenticate(authorization_header.substr(kScheme.size()));
    } else if (!authorization_header.empty()) {
        auth = Status(StatusCode::kUnauthenticated,
                      "authorization header is not a bearer token");
    }
    if (!auth.ok()) {
        event.result = "deny";
        event.decided_by = auth.status().message();
        SLUICE_RETURN_IF_ERROR(audit_->append(std::move(event)));
        return auth.status();
    }
    event.principal = auth->principal.name;
    event.token_id = auth->token_id;
    event.result = "allow";
    event.decided_by = "valid token";
    RequestContext context{auth->principal.id, auth->principal.name, request_id, client_address,
                           auth->token_id};
    if (defer_audit) {
        context.audit_ticket = audit_->defer(std::move(event));
        return context;
    }
    SLUICE_RETURN_IF_ERROR(audit_->append(std::move(event)));
    return context;
}

Status Governance::finish_request(const RequestContext& context) {
    if (context.audit_ticket == 0) {
        return Status();
    }
    return audit_->flush(context.audit_ticket);
}

Result<NewToken> Governance::issue_token(const std::string& name, bool admin,
                                         const std::string& comment,
                                         std::optional<std::int64_t> lifetime_s,
                                         const std::string& actor) {
    Result<Principal> principal = store_->principal(name);
    if (!principal.ok() && principal.status().code() == StatusCode::kNotFound) {
        principal = store_->create_principal(name, PrincipalKind::kUser, admin);
    }
    if (!principal.ok()) {
        return principal.status();
    }
    if (principal->kind == PrincipalKind::kGroup) {
        return failed_precondition("'" + name + "' is a group; tokens belong to users and "
                                   "service principals");
    }
    if (admin && !principal->is_admin) {
        SLUICE_RETURN_IF_ERROR(store_->set_admin(name, true));
    }
    SLUICE_ASSIGN_OR_RETURN(NewToken token,
                            store_->create_token(principal->id, comment, lifetime_s));
    SLUICE_RETURN_IF_ERROR(audit_->append(AuditEvent{
        .principal = actor,
        .action = "token.create.offline",
        .securable = "principal:" + name,
        .result = "ok",
        .token_id = token.info.id,
        .decided_by = "local access to the data directory",
        .details = admin ? "admin" : ""}));
    return token;
}

Result<AuditArchiveReport> Governance::archive_audit(std::int64_t up_to_seq,
                                                     const std::filesystem::path& archive_file,
                                                     const std::string& actor) {
    return archive_audit_log(data_dir_ / kCatalogFile, up_to_seq, archive_file, *audit_,
                             AuditEvent{.principal = actor,
                                        .action = "audit.archive.offline",
                                        .securable = "audit_log:",
                                        .result = "ok",
                                        .decided_by = "local access to the data directory"});
}

}  // namespace sluice::governance
