#include "governance/detail/crypto.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "common/check.h"

namespace sluice::governance::detail {
namespace {

// "'path'". Built by appending: GCC 12 reports a false -Wrestrict on "'" + std::string.
std::string quoted(const std::filesystem::path& path) {
    std::string out;
    out.push_back('\'');
    out.append(path.string());
    out.push_back('\'');
    return out;
}

struct BioFree {
    void operator()(BIO* bio) const { BIO_free(bio); }
};
struct PkeyCtxFree {
    void operator()(EVP_PKEY_CTX* ctx) const { EVP_PKEY_CTX_free(ctx); }
};

Result<std::string> raw_public_key(EVP_PKEY* key) {
    std::size_t size = 32;
    std::string out(size, '\0');
    if (EVP_PKEY_get_raw_public_key(key, reinterpret_cast<unsigned char*>(out.data()), &size) !=
            1 ||
        size != 32) {
        return data_loss("signing key is not an ed25519 key");
    }
    return out;
}

// OpenSSL 3's one-shot SHA256() looks the algorithm up in the provider tables on every call
// (EVP_Q_digest), which costs more than hashing a short record; the implementation is fetched
// once and never changes. SHA-256 is in the default provider, so the fetch cannot fail short of
// a broken installation.
const EVP_MD* sha256_md() {
    static EVP_MD* const kSha256 = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    SLUICE_CHECK(kSha256 != nullptr, "OpenSSL has no SHA-256 implementation");
    return kSha256;
}

}  // namespace

std::string sha256(std::string_view data) {
    std::string out(SHA256_DIGEST_LENGTH, '\0');
    unsigned int size = 0;
    SLUICE_CHECK(EVP_Digest(data.data(), data.size(), reinterpret_cast<unsigned char*>(out.data()),
                            &size, sha256_md(), nullptr) == 1 &&
                     size == SHA256_DIGEST_LENGTH,
                 "SHA-256 digest failed");
    return out;
}

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
    SLUICE_CHECK(ctx_ != nullptr, "out of memory for a SHA-256 context");
}

Sha256::Digest Sha256::digest(std::string_view data) {
    static_assert(std::tuple_size_v<Digest> == SHA256_DIGEST_LENGTH);
    Digest out{};
    unsigned int size = 0;
    // Init on a context that already holds SHA-256 resets its state without a new allocation.
    SLUICE_CHECK(EVP_DigestInit_ex2(ctx_.get(), sha256_md(), nullptr) == 1 &&
                     EVP_DigestUpdate(ctx_.get(), data.data(), data.size()) == 1 &&
                     EVP_DigestFinal_ex(ctx_.get(), out.data(), &size) == 1 &&
                     size == SHA256_DIGEST_LENGTH,
                 "SHA-256 digest failed");
    return out;
}

std::string to_hex(std::string_view bytes) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    out.reserve(bytes.size() * 2);
    for (unsigned char c : bytes) {
        out += kHex[c >> 4];
        out += kHex[c & 0xf];
    }
    return out;
}

Result<std::string> from_hex(std::string_view hex) {
    auto digit = [](char c) -> int {
        if (c >= '0' && c <= '9') {
            return c - '0';
        }
        if (c >= 'a' && c <= 'f') {
            return c - 'a' + 10;
        }
        if (c >= 'A' && c <= 'F') {
            return c - 'A' + 10;
        }
        return -1;
    };
    if (hex.size() % 2 != 0) {
        return invalid_argument("hex text has odd length " + std::to_string(hex.size()));
    }
    std::string out;
    out.reserve(hex.size() / 2);
    for (std::size_t i = 0; i < hex.size(); i += 2) {
        int high = digit(hex[i]);
        int low = digit(hex[i + 1]);
        if (high < 0 || low < 0) {
            return invalid_argument("not a hex digit at offset " + std::to_string(i));
        }
        out += static_cast<char>(high * 16 + low);
    }
    return out;
}

Result<std::string> random_bytes(std::size_t count) {
    std::string out(count, '\0');
    if (RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(count)) != 1) {
        return internal_error("openssl RAND_bytes failed: the random generator is not seeded");
    }
    return out;
}

Status write_private_file(const std::filesystem::path& path, const std::string& text) {
    std::filesystem::path temporary = path.string() + ".tmp";
    int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        return io_error("creating " + quoted(temporary) + ": " + std::strerror(errno));
    }
    bool written = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
                   ::fsync(fd) == 0;
    ::close(fd);
    if (!written || ::rename(temporary.c_str(), path.c_str()) != 0) {
        ::unlink(temporary.c_str());
        return io_error("writing " + quoted(path) + ": " + std::strerror(errno));
    }
    return Status();
}

bool constant_time_equal(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) {
        return false;
    }
    return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

Result<std::unique_ptr<Ed25519Key>> Ed25519Key::load(const std::filesystem::path& path) {
    struct stat info {};
    if (::stat(path.c_str(), &info) != 0) {
        if (errno == ENOENT) {
            return not_found("no audit signing key: " + quoted(path) + " does not exist");
        }
        return io_error("audit signing key " + quoted(path) + ": " + std::strerror(errno));
    }
    if ((info.st_mode & 0077) != 0) {
        return failed_precondition("audit signing key " + quoted(path) +
                                   " is readable by others; expected mode 0600");
    }
    std::FILE* file = std::fopen(path.c_str(), "rb");
    if (file == nullptr) {
        return io_error("opening " + quoted(path) + ": " + std::strerror(errno));
    }
    PkeyPtr key(PEM_read_PrivateKey(file, nullptr, nullptr, nullptr));
    std::fclose(file);
    if (!key || EVP_PKEY_get_id(key.get()) != EVP_PKEY_ED25519) {
        return data_loss(quoted(path) + " is not an ed25519 private key in PEM");
    }
    SLUICE_ASSIGN_OR_RETURN(std::string public_key, raw_public_key(key.get()));
    return std::make_unique<Ed25519Key>(std::move(key), std::move(public_key));
}

Result<std::unique_ptr<Ed25519Key>> Ed25519Key::load_or_create(const std::filesystem::path& path) {
    auto loaded = load(path);
    if (loaded.ok() || loaded.status().code() != StatusCode::kNotFound) {
        return loaded;
    }
    SLUICE_ASSIGN_OR_RETURN(auto key, generate());
    SLUICE_RETURN_IF_ERROR(key->save(path));
    return key;
}

Result<std::unique_ptr<Ed25519Key>> Ed25519Key::generate() {
    std::unique_ptr<EVP_PKEY_CTX, PkeyCtxFree> ctx(
        EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, nullptr));
    EVP_PKEY* raw = nullptr;
    if (!ctx || EVP_PKEY_keygen_init(ctx.get()) != 1 || EVP_PKEY_keygen(ctx.get(), &raw) != 1) {
        return internal_error("openssl could not generate an ed25519 key");
    }
    PkeyPtr key(raw);
    SLUICE_ASSIGN_OR_RETURN(std::string public_key, raw_public_key(key.get()));
    return std::make_unique<Ed25519Key>(std::move(key), std::move(public_key));
}

Status Ed25519Key::save(const std::filesystem::path& path) const {
    std::unique_ptr<BIO, BioFree> bio(BIO_new(BIO_s_mem()));
    if (!bio || PEM_write_bio_PrivateKey(bio.get(), key_.get(), nullptr, nullptr, 0, nullptr,
                                         nullptr) != 1) {
        return internal_error("openssl could not encode the ed25519 key as PEM");
    }
    char* data = nullptr;
    long size = BIO_get_mem_data(bio.get(), &data);
    return write_private_file(path, std::string(data, static_cast<std::size_t>(size)));
}

Result<std::string> Ed25519Key::sign(std::string_view message) const {
    std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
    std::size_t size = 64;
    std::string signature(size, '\0');
    if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, key_.get()) != 1 ||
        EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(signature.data()), &size,
                       reinterpret_cast<const unsigned char*>(message.data()),
                       message.size()) != 1) {
        return internal_error("openssl ed25519 signing failed");
    }
    signature.resize(size);
    return signature;
}

bool ed25519_verify(std::string_view public_key, std::string_view message,
                    std::string_view signature) {
    PkeyPtr key(EVP_PKEY_new_raw_public_key(
        EVP_PKEY_ED25519, nullptr, reinterpret_cast<const unsigned char*>(public_key.data()),
        public_key.size()));
    std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
    if (!key || !ctx ||
        EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, key.get()) != 1) {
        return false;
    }
    return EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()),
                            signature.size(),
                            reinterpret_cast<const unsigned char*>(message.data()),
                            message.size()) == 1;
}

}  // namespace sluice::governance::detail
