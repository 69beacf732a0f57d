#include "governance/audit_key_rotation.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>

#include "governance/audit_log.h"
#include "governance/detail/audit_format.h"
#include "governance/detail/crypto.h"
#include "governance/detail/key_rotation_record.h"
#include "governance/detail/sqlite.h"

namespace sluice::governance {
namespace {

std::filesystem::path with_suffix(const std::filesystem::path& path, const std::string& suffix) {
    return path.string() + suffix;
}

struct RotationRecord {
    std::int64_t seq = 0;
    detail::KeyRotationDetails details;
};

// The log's last rotation, if any. A record of that action whose details do not parse is the
// verifier's to report; here it is no rotation this function wrote.
Result<std::optional<RotationRecord>> last_rotation(detail::Database& db) {
    SLUICE_ASSIGN_OR_RETURN(auto select, db.prepare("SELECT seq, details FROM audit_log WHERE "
                                                    "action = ? ORDER BY seq DESC LIMIT 1"));
    select.bind(1, kAuditKeyRotationAction);
    SLUICE_ASSIGN_OR_RETURN(bool found, select.step());
    if (!found) {
        return std::optional<RotationRecord>();
    }
    auto details = detail::parse_key_rotation_details(select.column_text(1));
    if (!details) {
        return std::optional<RotationRecord>();
    }
    return std::optional<RotationRecord>(RotationRecord{select.column_int(0), std::move(*details)});
}

// The public key of the log's newest checkpoint: the key in use when the previous one was lost.
Result<std::string> last_checkpoint_key(detail::Database& db) {
    SLUICE_ASSIGN_OR_RETURN(
        auto select,
        db.prepare("SELECT public_key FROM audit_checkpoints ORDER BY seq DESC LIMIT 1"));
    SLUICE_ASSIGN_OR_RETURN(bool found, select.step());
    return found ? select.column_blob(0) : std::string();
}

Status sync_folder(const std::filesystem::path& folder) {
    int fd = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        return io_error("opening folder '" + folder.string() + "': " + std::strerror(errno));
    }
    const bool synced = ::fsync(fd) == 0;
    ::close(fd);
    if (!synced) {
        return io_error("syncing folder '" + folder.string() + "': " + std::strerror(errno));
    }
    return Status();
}

// After the rotation at `seq` committed: the previous key file (if any) is kept aside under a
// name that says which rotation retired it, and the new key takes its place. Returns where the
// previous key went (empty when there was none).
Result<std::filesystem::path> install_key(const std::filesystem::path& key_path,
                                          const std::filesystem::path& pending_path,
                                          std::int64_t seq) {
    std::filesystem::path retired;
    std::error_code ec;
    if (std::filesystem::exists(key_path, ec)) {
        retired = with_suffix(key_path, ".retired-" + std::to_string(seq));
        std::filesystem::rename(key_path, retired, ec);
        if (ec) {
            return io_error("moving the previous audit signing key to '" + retired.string() +
                            "': " + ec.message());
        }
    }
    std::filesystem::rename(pending_path, key_path, ec);
    if (ec) {
        return io_error("installing the new audit signing key '" + pending_path.string() +
                        "' as '" + key_path.string() + "': " + ec.message());
    }
    SLUICE_RETURN_IF_ERROR(
        sync_folder(key_path.parent_path().empty() ? "." : key_path.parent_path()));
    return retired;
}

// Finishes a rotation whose record committed before its key files were moved; nullopt when
// `pending_path` is not the key the log's last rotation names (that rotation never committed,
// and the file is removed).
Result<std::optional<AuditKeyRotation>> resume(detail::Database& db,
                                               const std::filesystem::path& key_path,
                                               const std::filesystem::path& pending_path) {
    SLUICE_ASSIGN_OR_RETURN(auto pending, detail::Ed25519Key::load(pending_path));
    SLUICE_ASSIGN_OR_RETURN(std::optional<RotationRecord> last, last_rotation(db));
    if (!last || last->details.public_key != pending->public_key()) {
        std::error_code ec;
        std::filesystem::remove(pending_path, ec);
        if (ec) {
            return io_error("removing '" + pending_path.string() +
                            "', the key of a rotation that never committed: " + ec.message());
        }
        return std::optional<AuditKeyRotation>();
    }
    AuditKeyRotation rotation{last->seq,
                              detail::to_hex(last->details.previous_public_key),
                              detail::to_hex(last->details.public_key),
                              last->details.previous_key_held,
                              {},
                              true};
    SLUICE_ASSIGN_OR_RETURN(rotation.retired_key_file,
                            install_key(key_path, pending_path, last->seq));
    return std::optional<AuditKeyRotation>(std::move(rotation));
}

}  // namespace

Result<AuditKeyRotation> rotate_audit_signing_key(const std::filesystem::path& db_path,
                                                  const std::filesystem::path& key_path,
                                                  const AuditKeyRotationOptions& options) {
    const std::filesystem::path pending_path = with_suffix(key_path, ".new");
    SLUICE_ASSIGN_OR_RETURN(auto db, detail::Database::open_existing(db_path.string()));
    std::error_code ec;
    if (std::filesystem::exists(pending_path, ec)) {
        SLUICE_ASSIGN_OR_RETURN(std::optional<AuditKeyRotation> resumed,
                                resume(*db, key_path, pending_path));
        if (resumed) {
            return std::move(*resumed);
        }
    }

    auto previous = detail::Ed25519Key::load(key_path);
    if (!previous.ok() && previous.status().code() != StatusCode::kNotFound) {
        return previous.status();
    }
    const bool held = previous.ok();
    if (held && options.previous_key_lost) {
        return invalid_argument("audit signing key '" + key_path.string() +
                                "' exists: rotate without 'previous key lost', so that it signs "
                                "the handover to the new key");
    }
    if (!held && !options.previous_key_lost) {
        return failed_precondition("audit signing key '" + key_path.string() +
                                   "' does not exist: restore it, or, if it is lost for good, "
                                   "rotate with 'previous key lost'");
    }
    detail::KeyRotationDetails details;
    details.previous_key_held = held;
    if (held) {
        details.previous_public_key = (*previous)->public_key();
    } else {
        SLUICE_ASSIGN_OR_RETURN(bool empty, audit_log_is_empty(db_path));
        if (empty) {
            return failed_precondition("the audit log in '" + db_path.string() +
                                       "' is empty and has no signing key: nothing to rotate "
                                       "(a server makes the key when it first starts)");
        }
        SLUICE_ASSIGN_OR_RETURN(details.previous_public_key, last_checkpoint_key(*db));
    }

    SLUICE_ASSIGN_OR_RETURN(auto next, detail::Ed25519Key::generate());
    details.public_key = next->public_key();
    if (held) {
        SLUICE_ASSIGN_OR_RETURN(details.handover_signature,
                                (*previous)->sign(detail::key_handover_message(
                                    details.previous_public_key, details.public_key)));
    }
    SLUICE_RETURN_IF_ERROR(next->save(pending_path));

    // The record is the first this writer commits, so it is signed, by the new key, in the
    // transaction that writes it (audit_log.h); the interval stays the log's.
    AuditLogOptions log_options;
    SLUICE_ASSIGN_OR_RETURN(log_options.checkpoint_every,
                            detail::inherited_checkpoint_every(*db, details.previous_public_key));
    log_options.acknowledge = AuditAcknowledge::kDurable;
    {
        SLUICE_ASSIGN_OR_RETURN(auto writer_db, detail::Database::open_existing(db_path.string()));
        AuditLog writer(std::move(writer_db), std::move(next), log_options);
        Status appended =
            writer.append(AuditEvent{.principal = options.principal,
                                     .action = std::string(kAuditKeyRotationAction),
                                     .securable = "metastore:",
                                     .result = "ok",
                                     .client = options.client,
                                     .decided_by = held ? "the previous key signed the handover"
                                                        : "the previous key was lost; no handover",
                                     .details = detail::key_rotation_details_json(details)});
        if (!appended.ok()) {
            std::filesystem::remove(pending_path, ec);
            return appended.with_context("recording the audit signing key rotation");
        }
    }
    SLUICE_ASSIGN_OR_RETURN(std::optional<RotationRecord> recorded, last_rotation(*db));
    if (!recorded || recorded->details.public_key != details.public_key) {
        return internal_error(
            "the audit signing key rotation was written but is not the log's "
            "last rotation");
    }
    AuditKeyRotation rotation{recorded->seq,
                              detail::to_hex(details.previous_public_key),
                              detail::to_hex(details.public_key),
                              held,
                              {},
                              false};
    SLUICE_ASSIGN_OR_RETURN(rotation.retired_key_file,
                            install_key(key_path, pending_path, recorded->seq));
    return rotation;
}

}  // namespace sluice::governance
