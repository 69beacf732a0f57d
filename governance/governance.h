#pragma once
// Governance: the catalog store, the audit log and the authorizer of one data directory, opened
// together with what is built on them — endpoint settings, usage and limits, lineage and
// guardrails — plus the two operations that need the first three: authenticating a bearer token
// (audited, success and failure) and bootstrapping the first admin.
//
// Files in the data directory: catalog.db (SQLite, WAL), audit_signing.key (Ed25519, 0600) and
// secrets.key (the AES-256 key that seals connection secrets, 0600; see secret_box.h), unless
// the options name a key file kept elsewhere.
//
// Thread safety: thread-safe.

#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "common/result.h"
#include "governance/audit_log.h"
#include "governance/authorizer.h"
#include "governance/endpoints.h"
#include "governance/guardrails.h"
#include "governance/lineage.h"
#include "governance/policies.h"
#include "governance/request_context.h"
#include "governance/secret_box.h"
#include "governance/store.h"
#include "governance/usage.h"

namespace sluice::governance {

inline constexpr std::string_view kCatalogFile = "catalog.db";
inline constexpr std::string_view kSigningKeyFile = "audit_signing.key";
inline constexpr std::string_view kBootstrapAdmin = "admin";

struct GovernanceOptions {
    AuditLogOptions audit;
    // The secret key file; empty: secrets.key in the data directory, created on first start.
    // A file named here must exist (an operator who keeps the key elsewhere provides it).
    std::filesystem::path secret_key_file;
};

class Governance {
public:
    static Result<std::unique_ptr<Governance>> open(const std::filesystem::path& data_dir,
                                                    GovernanceOptions options = {});

    Store& store() { return *store_; }
    AuditLog& audit() { return *audit_; }
    Authorizer& authorizer() { return *authorizer_; }
    Endpoints& endpoints() { return *endpoints_; }
    Usage& usage() { return *usage_; }
    Lineage& lineage() { return *lineage_; }
    Guardrails& guardrails() { return *guardrails_; }
    Policies& policies() { return *policies_; }
    const SecretBox& secrets() const { return *secrets_; }
    const std::filesystem::path& data_dir() const { return data_dir_; }

    // On a catalog with no principals: creates the admin user "admin" and a token for it,
    // audited, and returns the token (to be shown once). Otherwise nullopt.
    Result<std::optional<NewToken>> bootstrap_admin();

    // Checks an `Authorization` header value ("Bearer slc_..."). Audits the outcome either way.
    // kUnauthenticated when missing or invalid. On success the context is filled in. With
    // `defer_audit`, a success is held back (AuditLog::defer) under context.audit_ticket, to be
    // queued with the request's next record or by finish_request(); failures are always
    // recorded at once.
    Result<RequestContext> authenticate(const std::string& authorization_header,
                                        const std::string& request_id,
                                        const std::string& client_address,
                                        bool defer_audit = false);

    // Records the request's held-back records (durably or queued, as the audit log
    // acknowledges); call before the response leaves.
    Status finish_request(const RequestContext& context);

    // Break-glass: ensures principal `name` exists (a user, created when missing), makes it an
    // admin when `admin`, and issues a token; audited as action "token.create.offline".
    Result<NewToken> issue_token(const std::string& name, bool admin, const std::string& comment,
                                 std::optional<std::int64_t> lifetime_s,
                                 const std::string& actor);

    // Retention (archive_audit_log()): archives the audit records up to `up_to_seq` into
    // `archive_file`, audited as action "audit.archive.offline" by `actor`, in the transaction
    // that deletes the archived records.
    Result<AuditArchiveReport> archive_audit(std::int64_t up_to_seq,
                                             const std::filesystem::path& archive_file,
                                             const std::string& actor);

    Governance(std::filesystem::path data_dir, std::unique_ptr<Store> store,
               std::unique_ptr<AuditLog> audit);
    ~Governance();

private:
    std::filesystem::path data_dir_;
    std::unique_ptr<Store> store_;
    std::unique_ptr<AuditLog> audit_;
    std::unique_ptr<Authorizer> authorizer_;
    std::unique_ptr<Endpoints> endpoints_;
    std::unique_ptr<Usage> usage_;
    std::unique_ptr<Lineage> lineage_;
    std::unique_ptr<Guardrails> guardrails_;
    std::unique_ptr<Policies> policies_;
    std::unique_ptr<SecretBox> secrets_;
};

}  // namespace sluice::governance
