#pragma once
// SecretBox: how secrets kept in catalog.db (connection secrets) are encrypted at rest.
//
// AES-256-GCM through OpenSSL, a fresh random 96-bit nonce per value, and the secret's identity
// ("connection:<name>") as associated data, so that a sealed value copied onto another object
// does not open. A sealed value is text:
//
//   sealed:v1:<key id, 8 hex>:<hex of nonce (12 bytes) | ciphertext | tag (16 bytes)>
//
// The key id (the first 4 bytes of SHA-256 over a label and the key) tells "sealed with another
// key" apart from "altered", without revealing the key.
//
// The key is 32 random bytes, kept as 64 hex digits in a file: by default `secrets.key` in the
// data directory, created with mode 0600 on first start; operators who keep it elsewhere name
// the file (`SLUICE_SECRET_KEY_FILE`, read by app/), which must then exist.
//
// Errors never contain a secret or the key; they name the identity.
//
// Thread safety: immutable after load; seal() and open() may run concurrently.

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "common/result.h"

namespace sluice::governance {

inline constexpr std::string_view kSecretKeyFile = "secrets.key";

class SecretBox {
public:
    // Loads the key at `path`; when the file does not exist and `create` is set, writes a new
    // random key there (mode 0600, atomically). kFailedPrecondition when the file is missing
    // (and not to be created) or readable by others; kDataLoss when it does not hold 64 hex
    // digits; kIoError when it cannot be read or written.
    static Result<std::unique_ptr<SecretBox>> load_or_create(const std::filesystem::path& path,
                                                             bool create);
    // From 32 raw key bytes (tests and tools); kInvalidArgument for another length.
    static Result<std::unique_ptr<SecretBox>> from_key(std::string_view key);

    // Whether `value` has the sealed shape (a value stored before encryption does not).
    static bool is_sealed(std::string_view value);
    // The id of the key a sealed value was sealed with; empty when `value` is not one.
    static std::string sealed_key_id(std::string_view value);

    // The sealed form of `secret`, bound to `identity`.
    Result<std::string> seal(std::string_view identity, std::string_view secret) const;
    // The secret again. kDataLoss naming `identity` when the value was sealed with another key,
    // was altered, was sealed for another identity, or is not a sealed value.
    Result<std::string> open(std::string_view identity, std::string_view sealed) const;

    const std::string& key_id() const { return key_id_; }

    explicit SecretBox(std::string key);
    ~SecretBox();
    SecretBox(const SecretBox&) = delete;
    SecretBox& operator=(const SecretBox&) = delete;

private:
    std::string key_;     // 32 bytes; wiped on destruction
    std::string key_id_;  // 8 hex digits
};

}  // namespace sluice::governance
