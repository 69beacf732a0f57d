#pragma once
// The few cryptographic primitives governance needs, through OpenSSL: SHA-256, a CSPRNG,
// constant-time comparison and Ed25519 signatures (audit checkpoints).
//
// Thread safety: free functions are thread-safe; an Ed25519Key is immutable after load.

#include <openssl/evp.h>

#include <array>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "common/result.h"

namespace sluice::governance::detail {

// 32 raw bytes.
std::string sha256(std::string_view data);

struct MdCtxFree {
    void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
};
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, MdCtxFree>;

// SHA-256 that keeps its OpenSSL context from one digest to the next: the audit writer hashes
// thousands of short records a second, and sha256() allocates and frees a context each time.
//
// Thread safety: owned by one thread at a time.
class Sha256 {
public:
    using Digest = std::array<unsigned char, 32>;
    Sha256();
    Digest digest(std::string_view data);

private:
    MdCtxPtr ctx_;
};
std::string to_hex(std::string_view bytes);
// kInvalidArgument unless `hex` has an even number of hex digits.
Result<std::string> from_hex(std::string_view hex);
// Cryptographically random bytes (RAND_bytes); kInternal if the generator is not seeded.
Result<std::string> random_bytes(std::size_t count);
// Compares in time that depends only on the length, so that a timing side channel cannot
// reveal how many leading bytes of a secret matched.
bool constant_time_equal(std::string_view a, std::string_view b);
// Writes `text` to `path` with mode 0600, atomically (a temporary file, fsync, rename).
Status write_private_file(const std::filesystem::path& path, const std::string& text);

struct PkeyFree {
    void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;

class Ed25519Key {
public:
    // Loads the PEM private key at `path`, generating and writing it (mode 0600, atomically)
    // when the file does not exist. kIoError when it cannot be read or written, kDataLoss when
    // the file is not an Ed25519 key, kFailedPrecondition when it is readable by others.
    static Result<std::unique_ptr<Ed25519Key>> load_or_create(const std::filesystem::path& path);
    // Loads the key at `path` and never writes one: for verifiers, which must not make the key
    // they check against. kNotFound when the file does not exist; otherwise as load_or_create.
    static Result<std::unique_ptr<Ed25519Key>> load(const std::filesystem::path& path);
    // A new random key, in memory only. kInternal when OpenSSL cannot make one.
    static Result<std::unique_ptr<Ed25519Key>> generate();

    // Writes the private key as PEM to `path` (mode 0600, atomically). kIoError when it cannot.
    Status save(const std::filesystem::path& path) const;

    Result<std::string> sign(std::string_view message) const;
    // The raw 32-byte public key.
    const std::string& public_key() const { return public_key_; }

    Ed25519Key(PkeyPtr key, std::string public_key)
        : key_(std::move(key)), public_key_(std::move(public_key)) {}

private:
    PkeyPtr key_;
    std::string public_key_;
};

// Checks an Ed25519 signature made by the holder of the raw 32-byte `public_key`.
bool ed25519_verify(std::string_view public_key, std::string_view message,
                    std::string_view signature);

}  // namespace sluice::governance::detail
