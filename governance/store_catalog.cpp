// Store: securables (the catalog tree), their owners, comments and tags.
#include "governance/detail/sqlite.h"
#include "governance/store.h"

namespace sluice::governance {
namespace {

constexpr std::string_view kSelectSecurable =
    "SELECT s.id, s.type, s.name, s.full_name, COALESCE(s.parent_id, 0), "
    "COALESCE(s.owner_id, 0), COALESCE(p.name, ''), s.comment, s.created_at_ms, "
    "s.updated_at_ms FROM securables s LEFT JOIN principals p ON p.id = s.owner_id ";

Securable securable_from_row(const detail::Statement& row) {
    Securable s;
    s.id = row.column_int(0);
    s.type = parse_securable_type(row.column_text(1)).value_or(SecurableType::kMetastore);
    s.name = row.column_text(2);
    s.full_name = row.column_text(3);
    s.parent_id = row.column_int(4);
    s.owner_id = row.column_int(5);
    s.owner = row.column_text(6);
    s.comment = row.column_text(7);
    s.created_at_ms = row.column_int(8);
    s.updated_at_ms = row.column_int(9);
    return s;
}

std::string parent_name(const std::string& full_name) {
    auto dot = full_name.rfind('.');
    return dot == std::string::npos ? std::string() : full_name.substr(0, dot);
}

Status write_tags(detail::Database& db, std::int64_t id,
                  const std::map<std::string, std::string>& tags) {
    SLUICE_ASSIGN_OR_RETURN(auto erase, db.prepare("DELETE FROM tags WHERE securable_id = ?"));
    SLUICE_RETURN_IF_ERROR(erase.bind(1, id).run());
    SLUICE_ASSIGN_OR_RETURN(auto insert, db.prepare("INSERT INTO tags VALUES (?, ?, ?)"));
    for (const auto& [key, value] : tags) {
        SLUICE_RETURN_IF_ERROR(validate_identifier(key, "tag key"));
        if (value.size() > 1024) {
            return invalid_argument("tag '" + key + "' value has " +
                                    std::to_string(value.size()) +
                                    " characters, at most 1024 allowed");
        }
        insert.reset();
        SLUICE_RETURN_IF_ERROR(insert.bind(1, id).bind(2, key).bind(3, value).run());
    }
    return Status();
}

}  // namespace

Result<std::map<std::string, std::string>> Store::tags_locked(std::int64_t securable_id) {
    SLUICE_ASSIGN_OR_RETURN(
        auto* select, db_->cached("SELECT key, value FROM tags WHERE securable_id = ? ORDER BY key"));
    select->bind(1, securable_id);
    std::map<std::string, std::string> out;
    while (true) {
        SLUICE_ASSIGN_OR_RETURN(bool row, select->step());
        if (!row) {
            break;
        }
        out[select->column_text(0)] = select->column_text(1);
    }
    return out;
}

Result<Securable> Store::securable_locked(SecurableType type, const std::string& full_name) {
    SLUICE_ASSIGN_OR_RETURN(auto* select,
                            db_->cached(std::string(kSelectSecurable) +
                                        "WHERE s.type = ? AND s.full_name = ?"));
    select->bind(1, securable_type_name(type)).bind(2, full_name);
    SLUICE_ASSIGN_OR_RETURN(bool row, select->step());
    if (!row) {
        return not_found(std::string(securable_type_name(type)) + " '" + full_name +
                         "' does not exist");
    }
    Securable found = securable_from_row(*select);
    select->reset();
    SLUICE_ASSIGN_OR_RETURN(found.tags, tags_locked(found.id));
    return found;
}

Result<Securable> Store::create_securable(SecurableType type, const std::string& full_name,
                                          std::int64_t owner_id, const std::string& comment,
                                          const std::map<std::string, std::string>& tags) {
    if (type == SecurableType::kMetastore) {
        return invalid_argument("the metastore exists once and cannot be created");
    }
    SLUICE_ASSIGN_OR_RETURN(auto parts, split_full_name(type, full_name));
    std::lock_guard lock(mutex_);
    SLUICE_ASSIGN_OR_RETURN(auto transaction, detail::Transaction::begin(*db_));
    SecurableType container = *parent_type(type);
    SLUICE_ASSIGN_OR_RETURN(Securable parent,
                            securable_locked(container, container == SecurableType::kMetastore
                                                            ? std::string()
                                                            : parent_name(full_name)));
    if (securable_locked(type, full_name).ok()) {
        return Status(StatusCode::kAlreadyExists, std::string(securable_type_name(type)) + " '" +
                                                      full_name + "' already exists");
    }
    SLUICE_ASSIGN_OR_RETURN(auto insert,
                            db_->prepare("INSERT INTO securables (type, name, full_name, "
                                         "parent_id, owner_id, comment, created_at_ms, "
                                         "updated_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"));
    std::int64_t now = now_ms();
    SLUICE_RETURN_IF_ERROR(insert.bind(1, securable_type_name(type))
                               .bind(2, parts.back())
                               .bind(3, full_name)
                               .bind(4, parent.id)
                               .bind(5, owner_id)
                               .bind(6, comment)
                               .bind(7, now)
                               .bind(8, now)
                               .run()
                               .with_context("creating " + full_name));
    std::int64_t id = db_->last_insert_rowid();
    SLUICE_RETURN_IF_ERROR(write_tags(*db_, id, tags));
    SLUICE_RETURN_IF_ERROR(bump_generation_locked());
    SLUICE_ASSIGN_OR_RETURN(Securable created, securable_locked(type, full_name));
    SLUICE_RETURN_IF_ERROR(transaction->commit());
    SLUICE_RETURN_IF_ERROR(publish_generation_locked());
    return created;
}

Result<Securable> Store::securable(SecurableType type, const std::string& full_name) {
    std::lock_guard lock(mutex_);
    return securable_locked(type, full_name);
}

Result<std::vector<Securable>> Store::list_securables(SecurableType type,
                                                      const std::string& parent_full_name) {
    std::lock_guard lock(mutex_);
    SecurableType container = *parent_type(type);
    SLUICE_ASSIGN_OR_RETURN(Securable parent, securable_locked(container, parent_full_name));
    SLUICE_ASSIGN_OR_RETURN(auto select,
                            db_->prepare(std::string(kSelectSecurable) +
                                         "WHERE s.parent_id = ? AND s.type = ? ORDER BY s.name"));
    select.bind(1, parent.id).bind(2, securable_type_name(type));
    std::vector<Securable> out;
    while (true) {
        SLUICE_ASSIGN_OR_RETURN(bool row, select.step());
        if (!row) {
            break;
        }
        out.push_back(securable_from_row(select));
    }
    for (Securable& s : out) {
        SLUICE_ASSIGN_OR_RETURN(s.tags, tags_locked(s.id));
    }
    return out;
}

Result<Securable> Store::update_securable(SecurableType type, const std::string& full_name,
                                          std::optional<std::int64_t> owner_id,
                                          std::optional<std::string> comment,
                                          std::optional<std::map<std::string, std::string>> tags) {
    std::lock_guard lock(mutex_);
    SLUICE_ASSIGN_OR_RETURN(auto transaction, detail::Transaction::begin(*db_));
    SLUICE_ASSIGN_OR_RETURN(Securable current, securable_locked(type, full_name));
    if (type == SecurableType::kMetastore && owner_id) {
        return invalid_argument("the metastore has no owner; its admins manage it");
    }
    SLUICE_ASSIGN_OR_RETURN(auto update,
                            db_->prepare("UPDATE securables SET owner_id = ?, comment = ?, "
                                         "updated_at_ms = ? WHERE id = ?"));
    std::optional<std::int64_t> owner =
        type == SecurableType::kMetastore ? std::nullopt
                                          : std::optional(owner_id.value_or(current.owner_id));
    SLUICE_RETURN_IF_ERROR(update.bind(1, owner)
                               .bind(2, comment.value_or(current.comment))
                               .bind(3, now_ms())
                               .bind(4, current.id)
                               .run());
    if (tags) {
        SLUICE_RETURN_IF_ERROR(write_tags(*db_, current.id, *tags));
    }
    if (owner_id) {
        SLUICE_RETURN_IF_ERROR(bump_generation_locked());
    }
    SLUICE_ASSIGN_OR_RETURN(Securable updated, securable_locked(type, full_name));
    SLUICE_RETURN_IF_ERROR(transaction->commit());
    SLUICE_RETURN_IF_ERROR(publish_generation_locked());
    return updated;
}

Status Store::delete_securable(SecurableType type, const std::string& full_name, bool force,
                               const KeepCheck& keep) {
    if (type == SecurableType::kMetastore) {
        return invalid_argument("the metastore cannot be deleted");
    }
    std::lock_guard lock(mutex_);
    SLUICE_ASSIGN_OR_RETURN(auto transaction, detail::Transaction::begin(*db_));
    SLUICE_ASSIGN_OR_RETURN(Securable target, securable_locked(type, full_name));
    // The subtree, deepest last; deleted deepest first so that parent references hold.
    std::vector<std::int64_t> subtree{target.id};
    SLUICE_ASSIGN_OR_RETURN(auto children,
                            db_->prepare("SELECT id FROM securables WHERE parent_id = ?"));
    for (std::size_t i = 0; i < subtree.size(); ++i) {
        children.reset();
        children.bind(1, subtree[i]);
        while (true) {
            SLUICE_ASSIGN_OR_RETURN(bool row, children.step());
            if (!row) {
                break;
            }
            subtree.push_back(children.column_int(0));
        }
    }
    children.reset();
    if (subtree.size() > 1 && !force) {
        return failed_precondition(std::string(securable_type_name(type)) + " '" + full_name +
                                   "' is not empty (" + std::to_string(subtree.size() - 1) +
                                   " securables below it); delete them first or pass force");
    }
    if (keep) {
        SLUICE_ASSIGN_OR_RETURN(auto select,
                                db_->prepare(std::string(kSelectSecurable) + "WHERE s.id = ?"));
        for (std::size_t i = 1; i < subtree.size(); ++i) {
            select.reset();
            select.bind(1, subtree[i]);
            SLUICE_ASSIGN_OR_RETURN(bool row, select.step());
            if (!row) {
                continue;
            }
            Securable below = securable_from_row(select);
            SLUICE_ASSIGN_OR_RETURN(below.tags, tags_locked(below.id));
            SLUICE_RETURN_IF_ERROR(keep(below));
        }
    }
    SLUICE_ASSIGN_OR_RETURN(auto erase, db_->prepare("DELETE FROM securables WHERE id = ?"));
    for (auto it = subtree.rbegin(); it != subtree.rend(); ++it) {
        erase.reset();
        SLUICE_RETURN_IF_ERROR(erase.bind(1, *it).run());
    }
    SLUICE_RETURN_IF_ERROR(bump_generation_locked());
    SLUICE_RETURN_IF_ERROR(transaction->commit());
    return publish_generation_locked();
}

}  // namespace sluice::governance
