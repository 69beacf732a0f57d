// Store: API tokens. Only SHA-256 hashes are stored; the secret is shown once at creation.
#include "governance/detail/crypto.h"
#include "governance/detail/sqlite.h"
#include "governance/store.h"
#include "governance/token_format.h"

namespace sluice::governance {
namespace {

// A busy token's last_used_at is written at most this often.
constexpr std::int64_t kLastUsedResolutionMs = 60'000;

std::string checksum(std::string_view prefix_and_secret) {
    return detail::to_hex(detail::sha256(prefix_and_secret).substr(0, 4));
}

constexpr std::string_view kSelectToken =
    "SELECT t.id, t.principal_id, p.name, t.comment, t.created_at_ms, t.expires_at_ms, "
    "t.revoked_at_ms, t.last_used_at_ms FROM tokens t JOIN principals p ON p.id = t.principal_id ";

TokenInfo token_from_row(const detail::Statement& row) {
    TokenInfo info;
    info.id = row.column_text(0);
    info.principal_id = row.column_int(1);
    info.principal = row.column_text(2);
    info.comment = row.column_text(3);
    info.created_at_ms = row.column_int(4);
    info.expires_at_ms = row.column_optional_int(5);
    info.revoked_at_ms = row.column_optional_int(6);
    info.last_used_at_ms = row.column_optional_int(7);
    return info;
}

}  // namespace

Result<std::string> generate_token() {
    SLUICE_ASSIGN_OR_RETURN(std::string secret, detail::random_bytes(32));
    std::string token = std::string(kTokenPrefix) + detail::to_hex(secret);
    return token + checksum(token);
}

bool is_well_formed_token(std::string_view text) {
    if (text.size() != kTokenLength || text.substr(0, kTokenPrefix.size()) != kTokenPrefix) {
        return false;
    }
    for (char c : text.substr(kTokenPrefix.size())) {
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return false;
        }
    }
    std::string_view body = text.substr(0, kTokenLength - 8);
    return detail::constant_time_equal(checksum(body), text.substr(kTokenLength - 8));
}

Result<NewToken> Store::create_token(std::int64_t principal_id, const std::string& comment,
                                     std::optional<std::int64_t> lifetime_s) {
    // A century bounds the lifetime, so that its expiry in milliseconds cannot overflow.
    constexpr std::int64_t kMaxLifetimeS = std::int64_t{100} * 366 * 24 * 3600;
    if (lifetime_s && (*lifetime_s < 0 || *lifetime_s > kMaxLifetimeS)) {
        return invalid_argument("token lifetime must be seconds in [1, " +
                                std::to_string(kMaxLifetimeS) + "] or 0 for none, found " +
                                std::to_string(*lifetime_s));
    }
    SLUICE_ASSIGN_OR_RETURN(std::string secret, generate_token());
    SLUICE_ASSIGN_OR_RETURN(std::string id_bytes, detail::random_bytes(8));
    NewToken created;
    created.secret = secret;
    created.info.id = "tok_" + detail::to_hex(id_bytes);
    created.info.principal_id = principal_id;
    created.info.comment = comment;
    created.info.created_at_ms = now_ms();
    if (lifetime_s && *lifetime_s > 0) {
        created.info.expires_at_ms = created.info.created_at_ms + *lifetime_s * 1000;
    }
    std::string hash = detail::sha256(secret);

    std::lock_guard lock(mutex_);
    SLUICE_ASSIGN_OR_RETURN(auto transaction, detail::Transaction::begin(*db_));
    SLUICE_ASSIGN_OR_RETURN(auto owner, db_->prepare("SELECT name FROM principals WHERE id = ?"));
    owner.bind(1, principal_id);
    SLUICE_ASSIGN_OR_RETURN(bool found, owner.step());
    if (!found) {
        return not_found("principal id " + std::to_string(principal_id) + " does not exist");
    }
    created.info.principal = owner.column_text(0);
    owner.reset();
    SLUICE_ASSIGN_OR_RETURN(auto insert,
                            db_->prepare("INSERT INTO tokens (id, principal_id, hash, comment, "
                                         "created_at_ms, expires_at_ms) VALUES (?, ?, ?, ?, ?, ?)"));
    SLUICE_RETURN_IF_ERROR(insert.bind(1, created.info.id)
                               .bind(2, principal_id)
                               .bind_blob(3, hash.data(), hash.size())
                               .bind(4, comment)
                               .bind(5, created.info.created_at_ms)
                               .bind(6, created.info.expires_at_ms)
                               .run());
    SLUICE_RETURN_IF_ERROR(transaction->commit());
    return created;
}

Result<Authentication> Store::authenticate(const std::string& secret) {
    if (!is_well_formed_token(secret)) {
        return Status(StatusCode::kUnauthenticated,
                      "bearer token is malformed: expected slc_ and 72 hex digits with a valid "
                      "checksum");
    }
    std::string hash = detail::sha256(secret);
    std::lock_guard lock(mutex_);
    SLUICE_ASSIGN_OR_RETURN(
        auto* select,
        db_->cached("SELECT t.id, t.hash, t.expires_at_ms, t.revoked_at_ms, p.id, p.name, "
                    "p.kind, p.is_admin, p.created_at_ms FROM tokens t JOIN principals p ON "
                    "p.id = t.principal_id WHERE t.hash = ?"));
    select->bind_blob(1, hash.data(), hash.size());
    SLUICE_ASSIGN_OR_RETURN(bool row, select->step());
    // The lookup is by hash; the stored hash is still compared in constant time so that no
    // code path compares secret material with an early-exit memcmp.
    if (!row || !detail::constant_time_equal(select->column_blob(1), hash)) {
        select->reset();
        return Status(StatusCode::kUnauthenticated, "bearer token is not known");
    }
    Authentication auth;
    auth.token_id = select->column_text(0);
    std::optional<std::int64_t> expires = select->column_optional_int(2);
    std::optional<std::int64_t> revoked = select->column_optional_int(3);
    auth.principal = Principal{select->column_int(4), select->column_text(5),
                               parse_principal_kind(select->column_text(6))
                                   .value_or(PrincipalKind::kUser),
                               select->column_int(7) != 0, select->column_int(8)};
    select->reset();
    std::int64_t now = now_ms();
    if (revoked) {
        return Status(StatusCode::kUnauthenticated, "token " + auth.token_id + " was revoked");
    }
    if (expires && *expires <= now) {
        return Status(StatusCode::kUnauthenticated, "token " + auth.token_id + " has expired");
    }
    auto& written = last_used_written_[auth.token_id];
    if (now - written >= kLastUsedResolutionMs) {
        SLUICE_ASSIGN_OR_RETURN(
            auto* touch, db_->cached("UPDATE tokens SET last_used_at_ms = ? WHERE id = ?"));
        SLUICE_RETURN_IF_ERROR(touch->bind(1, now).bind(2, auth.token_id).run());
        written = now;
    }
    // Picks up changes that another process (the offline `sluice token create`) committed.
    SLUICE_RETURN_IF_ERROR(publish_generation_locked());
    return auth;
}

Status Store::revoke_token(const std::string& token_id) {
    std::lock_guard lock(mutex_);
    SLUICE_ASSIGN_OR_RETURN(auto update,
                            db_->prepare("UPDATE tokens SET revoked_at_ms = ? WHERE id = ? AND "
                                         "revoked_at_ms IS NULL"));
    SLUICE_RETURN_IF_ERROR(update.bind(1, now_ms()).bind(2, token_id).run());
    if (db_->changes() == 0) {
        return not_found("token " + token_id + " does not exist or is already revoked");
    }
    return Status();
}

Result<TokenInfo> Store::token(const std::string& token_id) {
    std::lock_guard lock(mutex_);
    SLUICE_ASSIGN_OR_RETURN(auto select,
                            db_->prepare(std::string(kSelectToken) + "WHERE t.id = ?"));
    select.bind(1, token_id);
    SLUICE_ASSIGN_OR_RETURN(bool row, select.step());
    if (!row) {
        return not_found("token " + token_id + " does not exist");
    }
    return token_from_row(select);
}

Result<std::vector<TokenInfo>> Store::tokens(std::optional<std::int64_t> principal_id) {
    std::lock_guard lock(mutex_);
    SLUICE_ASSIGN_OR_RETURN(
        auto select,
        db_->prepare(std::string(kSelectToken) +
                     "WHERE (?1 IS NULL OR t.principal_id = ?1) ORDER BY t.created_at_ms"));
    select.bind(1, principal_id);
    std::vector<TokenInfo> out;
    while (true) {
        SLUICE_ASSIGN_OR_RETURN(bool row, select.step());
        if (!row) {
            break;
        }
        out.push_back(token_from_row(select));
    }
    return out;
}

}  // namespace sluice::governance
