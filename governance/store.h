#pragma once
// Store: the catalog database (`catalog.db` in the data directory): principals and nested
// groups, API tokens (hashes only), securables (catalogs, schemas, tables, volumes, vector
// indexes, functions, model endpoints, agents, connections) with owners, comments and tags, and
// grants. Every write is one SQLite transaction. Schema changes are versioned migrations in code
// (store.cpp), applied in order at open.
//
// Every write that can change an authorisation decision (principals, admin flags, group
// membership, securables, owners, grants) bumps `meta.generation` in the same transaction; the
// Authorizer rebuilds its snapshot when the generation it holds is not the current one, so a
// revoke is seen by the very next check. Another process (the offline `sluice token create`)
// may write too: authenticate() re-reads the stored generation, so a change made elsewhere is
// seen by the next authenticated request.
//
// Thread safety: thread-safe; one connection guarded by a mutex.

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "governance/types.h"

namespace sluice::governance {

namespace detail {
class Database;
}

struct Securable {
    std::int64_t id = 0;
    SecurableType type = SecurableType::kCatalog;
    std::string name;       // last part
    std::string full_name;  // "catalog.schema.name"; "" for the metastore
    std::int64_t parent_id = 0;  // 0 for the metastore
    std::int64_t owner_id = 0;   // 0 for the metastore (its owners are the admins)
    std::string owner;
    std::string comment;
    std::map<std::string, std::string> tags;
    std::int64_t created_at_ms = 0;
    std::int64_t updated_at_ms = 0;
};

struct GrantRow {
    std::int64_t securable_id = 0;
    std::int64_t principal_id = 0;
    std::string principal;
    Privilege privilege = Privilege::kSelect;
};

struct PermissionChange {
    std::string principal;
    std::vector<Privilege> add;
    std::vector<Privilege> remove;
};

struct TokenInfo {
    std::string id;  // "tok_" and 16 hex digits; safe to show and log
    std::int64_t principal_id = 0;
    std::string principal;
    std::string comment;
    std::int64_t created_at_ms = 0;
    std::optional<std::int64_t> expires_at_ms;
    std::optional<std::int64_t> revoked_at_ms;
    std::optional<std::int64_t> last_used_at_ms;
};

struct NewToken {
    TokenInfo info;
    std::string secret;  // shown once; only its SHA-256 is stored
};

// Who a valid token speaks for.
struct Authentication {
    Principal principal;
    std::string token_id;
};

// Everything the Authorizer's snapshot is built from, read in one transaction.
struct AuthzData {
    std::uint64_t generation = 0;
    std::vector<Principal> principals;
    std::vector<std::pair<std::int64_t, std::int64_t>> memberships;  // (group, member)
    std::vector<Securable> securables;                                // no tags or comments
    std::vector<GrantRow> grants;
};

class Store {
public:
    // Opens or creates the database at `path` and applies pending migrations.
    // Errors: kIoError (cannot open), kDataLoss (not a database), kFailedPrecondition (the
    // database was written by a newer release).
    static Result<std::unique_ptr<Store>> open(const std::filesystem::path& path);
    ~Store();
    Store(const Store&) = delete;
    Store& operator=(const Store&) = delete;

    const std::filesystem::path& path() const { return path_; }
    int schema_version() const { return schema_version_; }
    std::uint64_t generation() const { return generation_.load(std::memory_order_acquire); }

    // --- principals and groups (store_principals.cpp)
    // kAlreadyExists when the name is taken; kInvalidArgument for a bad name.
    Result<Principal> create_principal(const std::string& name, PrincipalKind kind,
                                       bool is_admin);
    Result<Principal> principal(const std::string& name);
    Result<std::vector<Principal>> principals();
    Status set_admin(const std::string& name, bool is_admin);
    // kFailedPrecondition when the principal still owns securables.
    Status delete_principal(const std::string& name);
    // kFailedPrecondition when `group` is not a group or when the membership would make a
    // cycle (the message names the path back); kNotFound for unknown names.
    Status add_member(const std::string& group, const std::string& member);
    Status remove_member(const std::string& group, const std::string& member);
    Result<std::vector<std::string>> members(const std::string& group);

    // --- securables (store_catalog.cpp)
    // Creates `full_name` of `type` under its parent (which must exist), owned by `owner_id`.
    // kAlreadyExists, kNotFound (parent), kInvalidArgument (name).
    Result<Securable> create_securable(SecurableType type, const std::string& full_name,
                                       std::int64_t owner_id, const std::string& comment,
                                       const std::map<std::string, std::string>& tags);
    Result<Securable> securable(SecurableType type, const std::string& full_name);
    // Children of `parent` (a catalog for schemas, a schema for objects; the metastore when
    // `parent_full_name` is empty) of the given type, ordered by name.
    Result<std::vector<Securable>> list_securables(SecurableType type,
                                                   const std::string& parent_full_name);
    // Changes what is given; tags replace all tags when present.
    Result<Securable> update_securable(SecurableType type, const std::string& full_name,
                                       std::optional<std::int64_t> owner_id,
                                       std::optional<std::string> comment,
                                       std::optional<std::map<std::string, std::string>> tags);
    // kFailedPrecondition when it has children, unless `force` (then they go too, with their
    // grants). `keep` is asked about each securable below the target, in the same transaction:
    // an error from it (an object other state depends on, which must go its own way) stops the
    // delete with that error, and nothing is deleted.
    using KeepCheck = std::function<Status(const Securable& below)>;
    Status delete_securable(SecurableType type, const std::string& full_name, bool force,
                            const KeepCheck& keep = {});

    // --- grants (store_grants.cpp)
    Result<std::vector<GrantRow>> grants_on(std::int64_t securable_id);
    // Applies every change in one transaction: all or nothing. kInvalidArgument when a
    // privilege cannot be granted on this type; kNotFound for an unknown principal.
    Status update_permissions(std::int64_t securable_id, SecurableType type,
                              const std::vector<PermissionChange>& changes,
                              std::int64_t granted_by);
    Result<AuthzData> load_authz_data();

    // --- tokens (store_tokens.cpp)
    // `lifetime_s` absent or 0: never expires.
    Result<NewToken> create_token(std::int64_t principal_id, const std::string& comment,
                                  std::optional<std::int64_t> lifetime_s);
    // kUnauthenticated for a malformed, unknown, expired or revoked token (the message says
    // which, without echoing the token).
    Result<Authentication> authenticate(const std::string& secret);
    // kNotFound when no such token.
    Status revoke_token(const std::string& token_id);
    Result<TokenInfo> token(const std::string& token_id);
    // Every token, or those of one principal.
    Result<std::vector<TokenInfo>> tokens(std::optional<std::int64_t> principal_id);

    Store(std::filesystem::path path, std::unique_ptr<detail::Database> db);

private:
    Status migrate();
    Status bump_generation_locked();
    Status publish_generation_locked();
    Result<Principal> principal_locked(const std::string& name);
    Result<Securable> securable_locked(SecurableType type, const std::string& full_name);
    Result<std::map<std::string, std::string>> tags_locked(std::int64_t securable_id);

    std::filesystem::path path_;
    std::mutex mutex_;
    std::unique_ptr<detail::Database> db_;  // guarded by mutex_
    int schema_version_ = 0;
    std::atomic<std::uint64_t> generation_{0};
    // Last time each token's last_used_at was written, so that a busy token costs one write a
    // minute rather than one per request. Guarded by mutex_.
    std::map<std::string, std::int64_t> last_used_written_;
};

std::int64_t now_ms();

}  // namespace sluice::governance
