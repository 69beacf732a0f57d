// Store: principals and nested groups.
#include <set>

#include "governance/detail/sqlite.h"
#include "governance/store.h"

namespace sluice::governance {
namespace {

Principal principal_from_row(const detail::Statement& row) {
    Principal p;
    p.id = row.column_int(0);
    p.name = row.column_text(1);
    p.kind = parse_principal_kind(row.column_text(2)).value_or(PrincipalKind::kUser);
    p.is_admin = row.column_int(3) != 0;
    p.created_at_ms = row.column_int(4);
    return p;
}

constexpr std::string_view kPrincipalColumns = "id, name, kind, is_admin, created_at_ms";

}  // namespace

Result<Principal> Store::principal_locked(const std::string& name) {
    SLUICE_ASSIGN_OR_RETURN(auto* select,
                            db_->cached("SELECT id, name, kind, is_admin, created_at_ms "
                                        "FROM principals WHERE name = ?"));
    select->bind(1, name);
    SLUICE_ASSIGN_OR_RETURN(bool row, select->step());
    if (!row) {
        return not_found("principal '" + name + "' does not exist");
    }
    Principal found = principal_from_row(*select);
    select->reset();
    return found;
}

Result<Principal> Store::create_principal(const std::string& name, PrincipalKind kind,
                                          bool is_admin) {
    SLUICE_RETURN_IF_ERROR(validate_principal_name(name));
    std::lock_guard lock(mutex_);
    SLUICE_ASSIGN_OR_RETURN(auto transaction, detail::Transaction::begin(*db_));
    if (principal_locked(name).ok()) {
        return Status(StatusCode::kAlreadyExists, "principal '" + name + "' already exists");
    }
    SLUICE_ASSIGN_OR_RETURN(auto insert,
                            db_->prepare("INSERT INTO principals (name, kind, is_admin, "
                                         "created_at_ms) VALUES (?, ?, ?, ?)"));
    std::int64_t created = now_ms();
    SLUICE_RETURN_IF_ERROR(insert.bind(1, name)
                               .bind(2, principal_kind_name(kind))
                               .bind(3, is_admin ? 1 : 0)
                               .bind(4, created)
                               .run());
    Principal p{db_->last_insert_rowid(), name, kind, is_admin, created};
    SLUICE_RETURN_IF_ERROR(bump_generation_locked());
    SLUICE_RETURN_IF_ERROR(transaction->commit());
    SLUICE_RETURN_IF_ERROR(publish_generation_locked());
    return p;
}

Result<Principal> Store::principal(const std::string& name) {
    std::lock_guard lock(mutex_);
    return principal_locked(name);
}

Result<std::vector<Principal>> Store::principals() {
    std::lock_guard lock(mutex_);
    SLUICE_ASSIGN_OR_RETURN(auto select,
                            db_->prepare("SELECT " + std::string(kPrincipalColumns) +
                                         " FROM principals ORDER BY name"));
    std::vector<Principal> out;
    while (true) {
        SLUICE_ASSIGN_OR_RETURN(bool row, select.step());
        if (!row) {
            break;
        }
        out.push_back(principal_from_row(select));
    }
    return out;
}

Status Store::set_admin(const std::string& name, bool is_admin) {
    std::lock_guard lock(mutex_);
    SLUICE_ASSIGN_OR_RETURN(auto transaction, detail::Transaction::begin(*db_));
    SLUICE_ASSIGN_OR_RETURN(Principal p, principal_locked(name));
    SLUICE_ASSIGN_OR_RETURN(auto update,
                            db_->prepare("UPDATE principals SET is_admin = ? WHERE id = ?"));
    SLUICE_RETURN_IF_ERROR(update.bind(1, is_admin ? 1 : 0).bind(2, p.id).run());
    SLUICE_RETURN_IF_ERROR(bump_generation_locked());
    SLUICE_RETURN_IF_ERROR(transaction->commit());
    return publish_generation_locked();
}

Status Store::delete_principal(const std::string& name) {
    std::lock_guard lock(mutex_);
    SLUICE_ASSIGN_OR_RETURN(auto transaction, detail::Transaction::begin(*db_));
    SLUICE_ASSIGN_OR_RETURN(Principal p, principal_locked(name));
    SLUICE_ASSIGN_OR_RETURN(auto owned,
                            db_->prepare("SELECT COUNT(*) FROM securables WHERE owner_id = ?"));
    owned.bind(1, p.id);
    SLUICE_ASSIGN_OR_RETURN(bool row, owned.step());
    if (row && owned.column_int(0) > 0) {
        return failed_precondition("principal '" + name + "' owns " +
                                   std::to_string(owned.column_int(0)) +
                                   " securables; transfer their ownership first");
    }
    owned.reset();
    SLUICE_ASSIGN_OR_RETURN(auto erase, db_->prepare("DELETE FROM principals WHERE id = ?"));
    SLUICE_RETURN_IF_ERROR(erase.bind(1, p.id).run());
    SLUICE_RETURN_IF_ERROR(bump_generation_locked());
    SLUICE_RETURN_IF_ERROR(transaction->commit());
    return publish_generation_locked();
}

Status Store::add_member(const std::string& group, const std::string& member) {
    std::lock_guard lock(mutex_);
    SLUICE_ASSIGN_OR_RETURN(auto transaction, detail::Transaction::begin(*db_));
    SLUICE_ASSIGN_OR_RETURN(Principal g, principal_locked(group));
    SLUICE_ASSIGN_OR_RETURN(Principal m, principal_locked(member));
    if (g.kind != PrincipalKind::kGroup) {
        return failed_precondition("'" + group + "' is a " +
                                   std::string(principal_kind_name(g.kind)) +
                                   ", not a group: only groups have members");
    }
    // A cycle appears when `group` is already (transitively) a member of `member`: walk up
    // from `group` through the groups that contain it.
    if (g.id == m.id) {
        return failed_precondition("group '" + group + "' cannot be a member of itself");
    }
    SLUICE_ASSIGN_OR_RETURN(auto parents,
                            db_->prepare("SELECT group_id FROM group_members WHERE member_id = ?"));
    std::set<std::int64_t> seen{g.id};
    std::vector<std::int64_t> frontier{g.id};
    while (!frontier.empty()) {
        std::int64_t current = frontier.back();
        frontier.pop_back();
        parents.reset();
        parents.bind(1, current);
        while (true) {
            SLUICE_ASSIGN_OR_RETURN(bool row, parents.step());
            if (!row) {
                break;
            }
            std::int64_t parent = parents.column_int(0);
            if (parent == m.id) {
                return failed_precondition("adding '" + member + "' to group '" + group +
                                           "' would make a cycle: '" + group +
                                           "' is already inside '" + member + "'");
            }
            if (seen.insert(parent).second) {
                frontier.push_back(parent);
            }
        }
    }
    parents.reset();
    SLUICE_ASSIGN_OR_RETURN(auto insert, db_->prepare("INSERT OR IGNORE INTO group_members "
                                                      "(group_id, member_id) VALUES (?, ?)"));
    SLUICE_RETURN_IF_ERROR(insert.bind(1, g.id).bind(2, m.id).run());
    SLUICE_RETURN_IF_ERROR(bump_generation_locked());
    SLUICE_RETURN_IF_ERROR(transaction->commit());
    return publish_generation_locked();
}

Status Store::remove_member(const std::string& group, const std::string& member) {
    std::lock_guard lock(mutex_);
    SLUICE_ASSIGN_OR_RETURN(auto transaction, detail::Transaction::begin(*db_));
    SLUICE_ASSIGN_OR_RETURN(Principal g, principal_locked(group));
    SLUICE_ASSIGN_OR_RETURN(Principal m, principal_locked(member));
    SLUICE_ASSIGN_OR_RETURN(auto erase, db_->prepare("DELETE FROM group_members "
                                                     "WHERE group_id = ? AND member_id = ?"));
    SLUICE_RETURN_IF_ERROR(erase.bind(1, g.id).bind(2, m.id).run());
    if (db_->changes() == 0) {
        return not_found("'" + member + "' is not a direct member of group '" + group + "'");
    }
    SLUICE_RETURN_IF_ERROR(bump_generation_locked());
    SLUICE_RETURN_IF_ERROR(transaction->commit());
    return publish_generation_locked();
}

Result<std::vector<std::string>> Store::members(const std::string& group) {
    std::lock_guard lock(mutex_);
    SLUICE_ASSIGN_OR_RETURN(Principal g, principal_locked(group));
    SLUICE_ASSIGN_OR_RETURN(auto select,
                            db_->prepare("SELECT p.name FROM group_members m JOIN principals p "
                                         "ON p.id = m.member_id WHERE m.group_id = ? "
                                         "ORDER BY p.name"));
    select.bind(1, g.id);
    std::vector<std::string> out;
    while (true) {
        SLUICE_ASSIGN_OR_RETURN(bool row, select.step());
        if (!row) {
            break;
        }
        out.push_back(select.column_text(0));
    }
    return out;
}

}  // namespace sluice::governance
