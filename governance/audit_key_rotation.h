#pragma once
// Replacing the key that signs the audit log's checkpoints, as a record in the log itself.
//
// A rotation appends one record, action kAuditKeyRotationAction, whose details name the previous
// and the new public key (detail/key_rotation_record.h), and signs a checkpoint at that record
// with the new key, in the transaction that writes it. When the previous key is held, it signs a
// handover to the new one, kept in the details. Verify (verify_audit_log) then accepts each
// checkpoint signed by the key in use at its seq: the previous keys before their rotation, the
// data directory's key from the last rotation on. A rotation cannot be forged by someone without
// the new key: the checkpoint at its record, and through the chain every later checkpoint, is
// signed by it, and the last rotation must hand over to the data directory's key.
//
// The key files: the new key is written to `<key>.new` before the record is committed, then
// the previous key file (if any) is renamed `<key>.retired-<seq>` and `<key>.new` becomes the
// key. A rotation interrupted between the commit and the renames is finished by running it
// again, which finds `<key>.new` named by the log's last rotation; a `<key>.new` the log does not
// name is a rotation that never committed, and is removed.
//
// Offline only: every writer of the data directory (servers, `sluice token create`) must be
// stopped, since one still signing with the previous key after the rotation leaves checkpoints
// that verify refuses. The caller holds the data directory's lock.
//
// Thread safety: free function; not to be run concurrently with any writer of the log.

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include "common/result.h"

namespace sluice::governance {

inline constexpr std::string_view kAuditKeyRotationAction = "audit.signing_key.rotate";

struct AuditKeyRotationOptions {
    // The previous key file is gone: rotate without its handover. Refused when the file exists,
    // so that a held key always signs the handover.
    bool previous_key_lost = false;
    std::string principal;  // who rotates, as recorded
    std::string client;     // from where (e.g. "local:alice")
};

struct AuditKeyRotation {
    std::int64_t seq = 0;             // the rotation's record
    std::string previous_public_key;  // hex; empty when the key was lost and no checkpoint named it
    std::string public_key;           // hex: the data directory's key from now on
    bool previous_key_held = false;
    std::filesystem::path retired_key_file;  // where the previous private key went; empty if lost
    bool resumed = false;  // an interrupted rotation was finished instead of starting one
};

// Rotates the signing key at `key_path` for the log in `db_path` (migrated: Store::open()).
// Errors: kInvalidArgument for previous_key_lost while the key file exists; kFailedPrecondition
// when the key file is missing and previous_key_lost is not set, or when it is missing and the
// log is empty (nothing to rotate: a writer makes the key at its first start); those of reading
// the key and writing the log and the files.
Result<AuditKeyRotation> rotate_audit_signing_key(const std::filesystem::path& db_path,
                                                  const std::filesystem::path& key_path,
                                                  const AuditKeyRotationOptions& options);

}  // namespace sluice::governance
