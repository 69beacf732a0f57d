// Store: grants, and the consistent read of everything the Authorizer decides from.
#include "governance/detail/sqlite.h"
#include "governance/store.h"

namespace sluice::governance {

Result<std::vector<GrantRow>> Store::grants_on(std::int64_t securable_id) {
    std::lock_guard lock(mutex_);
    SLUICE_ASSIGN_OR_RETURN(auto select,
                            db_->prepare("SELECT g.securable_id, g.principal_id, p.name, "
                                         "g.privilege FROM grants g JOIN principals p ON "
                                         "p.id = g.principal_id WHERE g.securable_id = ? "
                                         "ORDER BY p.name, g.privilege"));
    select.bind(1, securable_id);
    std::vector<GrantRow> out;
    while (true) {
        SLUICE_ASSIGN_OR_RETURN(bool row, select.step());
        if (!row) {
            break;
        }
        SLUICE_ASSIGN_OR_RETURN(Privilege privilege, parse_privilege(select.column_text(3)));
        out.push_back(GrantRow{select.column_int(0), select.column_int(1), select.column_text(2),
                               privilege});
    }
    return out;
}

Status Store::update_permissions(std::int64_t securable_id, SecurableType type,
                                 const std::vector<PermissionChange>& changes,
                                 std::int64_t granted_by) {
    for (const auto& change : changes) {
        for (const auto* list : {&change.add, &change.remove}) {
            for (Privilege privilege : *list) {
                if (!privilege_grantable_on(privilege, type)) {
                    return invalid_argument("privilege " + std::string(privilege_name(privilege)) +
                                            " cannot be granted on a " +
                                            std::string(securable_type_name(type)));
                }
            }
        }
    }
    std::lock_guard lock(mutex_);
    SLUICE_ASSIGN_OR_RETURN(auto transaction, detail::Transaction::begin(*db_));
    SLUICE_ASSIGN_OR_RETURN(auto insert,
                            db_->prepare("INSERT OR IGNORE INTO grants (securable_id, "
                                         "principal_id, privilege, granted_by, granted_at_ms) "
                                         "VALUES (?, ?, ?, ?, ?)"));
    SLUICE_ASSIGN_OR_RETURN(auto erase,
                            db_->prepare("DELETE FROM grants WHERE securable_id = ? AND "
                                         "principal_id = ? AND privilege = ?"));
    std::int64_t now = now_ms();
    for (const auto& change : changes) {
        SLUICE_ASSIGN_OR_RETURN(Principal grantee, principal_locked(change.principal));
        for (Privilege privilege : change.add) {
            insert.reset();
            SLUICE_RETURN_IF_ERROR(insert.bind(1, securable_id)
                                       .bind(2, grantee.id)
                                       .bind(3, privilege_name(privilege))
                                       .bind(4, granted_by)
                                       .bind(5, now)
                                       .run());
        }
        for (Privilege privilege : change.remove) {
            erase.reset();
            SLUICE_RETURN_IF_ERROR(erase.bind(1, securable_id)
                                       .bind(2, grantee.id)
                                       .bind(3, privilege_name(privilege))
                                       .run());
        }
    }
    SLUICE_RETURN_IF_ERROR(bump_generation_locked());
    SLUICE_RETURN_IF_ERROR(transaction->commit());
    return publish_generation_locked();
}

Result<AuthzData> Store::load_authz_data() {
    std::lock_guard lock(mutex_);
    // One read transaction so that the snapshot is consistent with the generation it carries.
    SLUICE_RETURN_IF_ERROR(db_->exec("BEGIN"));
    struct Rollback {
        detail::Database& db;
        ~Rollback() { (void)db.exec("ROLLBACK"); }
    } rollback{*db_};

    AuthzData data;
    SLUICE_ASSIGN_OR_RETURN(auto generation,
                            db_->prepare("SELECT value FROM meta WHERE key = 'generation'"));
    SLUICE_ASSIGN_OR_RETURN(bool has_generation, generation.step());
    if (!has_generation) {
        return data_loss("catalog database has no generation counter");
    }
    data.generation = static_cast<std::uint64_t>(generation.column_int(0));

    SLUICE_ASSIGN_OR_RETURN(
        auto principals,
        db_->prepare("SELECT id, name, kind, is_admin, created_at_ms FROM principals"));
    while (true) {
        SLUICE_ASSIGN_OR_RETURN(bool row, principals.step());
        if (!row) {
            break;
        }
        data.principals.push_back(
            Principal{principals.column_int(0), principals.column_text(1),
                      parse_principal_kind(principals.column_text(2)).value_or(PrincipalKind::kUser),
                      principals.column_int(3) != 0, principals.column_int(4)});
    }
    SLUICE_ASSIGN_OR_RETURN(auto members,
                            db_->prepare("SELECT group_id, member_id FROM group_members"));
    while (true) {
        SLUICE_ASSIGN_OR_RETURN(bool row, members.step());
        if (!row) {
            break;
        }
        data.memberships.emplace_back(members.column_int(0), members.column_int(1));
    }
    SLUICE_ASSIGN_OR_RETURN(auto securables,
                            db_->prepare("SELECT id, type, full_name, COALESCE(parent_id, 0), "
                                         "COALESCE(owner_id, 0) FROM securables"));
    while (true) {
        SLUICE_ASSIGN_OR_RETURN(bool row, securables.step());
        if (!row) {
            break;
        }
        Securable s;
        s.id = securables.column_int(0);
        SLUICE_ASSIGN_OR_RETURN(s.type, parse_securable_type(securables.column_text(1)));
        s.full_name = securables.column_text(2);
        s.parent_id = securables.column_int(3);
        s.owner_id = securables.column_int(4);
        data.securables.push_back(std::move(s));
    }
    SLUICE_ASSIGN_OR_RETURN(
        auto grants, db_->prepare("SELECT securable_id, principal_id, privilege FROM grants"));
    while (true) {
        SLUICE_ASSIGN_OR_RETURN(bool row, grants.step());
        if (!row) {
            break;
        }
        SLUICE_ASSIGN_OR_RETURN(Privilege privilege, parse_privilege(grants.column_text(2)));
        data.grants.push_back(GrantRow{grants.column_int(0), grants.column_int(1), "", privilege});
    }
    return data;
}

}  // namespace sluice::governance
