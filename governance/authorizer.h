#pragma once
// Authorizer: decides whether a principal holds a privilege on a securable, with Unity
// Catalog's semantics, and says why.
//
// Rules (the brute-force reference in tests/governance/authorizer_reference_test.cpp restates
// them in the simplest possible code):
//  - Default deny. A metastore admin (a principal flagged admin, or a member, directly or through
//    nested groups, of a group flagged admin) holds every privilege everywhere.
//  - A principal holds privilege P on securable S when P, or ALL_PRIVILEGES (which implies every
//    privilege but MANAGE), is granted on S or on any container of S (schema, catalog) to the
//    principal or to any group it belongs to, directly or through nested groups; or when the
//    principal or one of those groups owns S or a container of S (ownership implies every
//    privilege, MANAGE included). Grants on a container reach current and future children.
//  - Using anything inside a catalog also requires USE_CATALOG on that catalog, and anything
//    inside a schema USE_SCHEMA on that schema (held by the same rule), except BROWSE, which
//    shows metadata without them.
//  - A check for a privilege that does not apply to the securable's type (SELECT on a volume) is
//    denied.
//
// Decisions come from an in-memory snapshot rebuilt whenever the Store's generation moves;
// every write that changes a decision bumps it in its own transaction, so the check after a
// revoke sees the revoke.
//
// Thread safety: thread-safe. Checks read an immutable snapshot; one thread at a time rebuilds.

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/result.h"
#include "governance/audit_sink.h"
#include "governance/request_context.h"
#include "governance/store.h"
#include "governance/types.h"

namespace sluice::governance {

enum class DecisionSource { kNone, kAdmin, kOwner, kGrant };

struct Decision {
    bool allowed = false;
    DecisionSource source = DecisionSource::kNone;
    // For kGrant and kOwner: the securable that carries the grant or ownership, and the
    // principal (the caller or one of its groups) it is granted to or owned by.
    SecurableType on_type = SecurableType::kMetastore;
    std::string on_name;
    std::string via_principal;
    Privilege granted = Privilege::kBrowse;  // what was granted (may be ALL_PRIVILEGES)
    // One sentence: "grant SELECT on catalog 'main' to group 'analysts'" or, when denied, what is
    // missing: "no grant of USE_SCHEMA on schema 'main.sales' or above to 'bob' or his groups".
    std::string reason;
};

class Authorizer {
public:
    Authorizer(Store& store, AuditSink& audit);

    // The decision, unaudited: for filtering listings and for explanations. kNotFound when the
    // securable or principal does not exist.
    Result<Decision> check(std::int64_t principal_id, Privilege privilege, SecurableType type,
                           const std::string& full_name);

    // Audits the decision (allow and deny) and returns ok when allowed, kPermissionDenied with
    // the reason when denied, kNotFound (audited as a deny) when the securable does not exist.
    // When the audit record cannot be written the request fails (kUnavailable): nothing is
    // allowed unaudited.
    Status require(const RequestContext& context, Privilege privilege, SecurableType type,
                   const std::string& full_name);

    // Every privilege that applies to the securable's type, with its decision for the principal.
    Result<std::vector<std::pair<Privilege, Decision>>> effective(std::int64_t principal_id,
                                                                  SecurableType type,
                                                                  const std::string& full_name);

    // The names of every group the principal is inside, directly or through nested groups, as
    // of the current snapshot. kNotFound for an unknown principal.
    Result<std::vector<std::string>> groups_of(std::int64_t principal_id);

    // Whether the principal is a metastore admin (directly or through groups).
    Result<bool> is_admin(std::int64_t principal_id);

    // The principal's id first, then every group it belongs to, directly or through nested
    // groups. kNotFound for an unknown id.
    Result<std::vector<std::int64_t>> principal_closure(std::int64_t principal_id);
    // "user 'bob'", "group 'analysts'": how messages name a principal.
    Result<std::string> principal_name(std::int64_t principal_id);

    std::uint64_t snapshot_generation();

    struct Snapshot;

private:
    Result<std::shared_ptr<const Snapshot>> current();

    Store& store_;
    AuditSink& audit_;
    std::mutex mutex_;  // guards snapshot_ (the pointer, not what it points to) and rebuilds
    std::shared_ptr<const Snapshot> snapshot_;
};

}  // namespace sluice::governance
