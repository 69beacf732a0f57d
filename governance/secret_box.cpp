#include "governance/secret_box.h"

#include <sys/stat.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "governance/detail/crypto.h"

namespace sluice::governance {
namespace {

constexpr std::string_view kPrefix = "sealed:v1:";
constexpr std::size_t kKeyBytes = 32;    // AES-256
constexpr std::size_t kNonceBytes = 12;  // the GCM nonce size NIST SP 800-38D recommends
constexpr std::size_t kTagBytes = 16;
constexpr std::size_t kKeyIdHex = 8;

struct CipherCtxFree {
    void operator()(EVP_CIPHER_CTX* ctx) const { EVP_CIPHER_CTX_free(ctx); }
};
using CipherCtxPtr = std::unique_ptr<EVP_CIPHER_CTX, CipherCtxFree>;

const unsigned char* bytes(std::string_view text) {
    return reinterpret_cast<const unsigned char*>(text.data());
}

std::string quoted(const std::filesystem::path& path) {
    std::string out;
    out.push_back('\'');
    out.append(path.string());
    out.push_back('\'');
    return out;
}

Status sealed_error(std::string_view identity, std::string_view why) {
    std::string message(identity);
    message += ": cannot decrypt its secret: ";
    message += why;
    return data_loss(message);
}

}  // namespace

SecretBox::SecretBox(std::string key)
    : key_(std::move(key)),
      key_id_(detail::to_hex(detail::sha256("sluice secret key id\n" + key_)).substr(0, kKeyIdHex)) {}

SecretBox::~SecretBox() { OPENSSL_cleanse(key_.data(), key_.size()); }

Result<std::unique_ptr<SecretBox>> SecretBox::from_key(std::string_view key) {
    if (key.size() != kKeyBytes) {
        return invalid_argument("secret key: expected " + std::to_string(kKeyBytes) +
                                " bytes, found " + std::to_string(key.size()));
    }
    return std::make_unique<SecretBox>(std::string(key));
}

Result<std::unique_ptr<SecretBox>> SecretBox::load_or_create(const std::filesystem::path& path,
                                                             bool create) {
    struct stat info {};
    if (::stat(path.c_str(), &info) != 0) {
        if (errno != ENOENT) {
            return io_error("secret key " + quoted(path) + ": " + std::strerror(errno));
        }
        if (!create) {
            return failed_precondition("secret key file " + quoted(path) +
                                       " does not exist; connection secrets cannot be read "
                                       "without the key they were sealed with");
        }
        SLUICE_ASSIGN_OR_RETURN(std::string key, detail::random_bytes(kKeyBytes));
        SLUICE_RETURN_IF_ERROR(detail::write_private_file(path, detail::to_hex(key) + "\n"));
        return std::make_unique<SecretBox>(std::move(key));
    }
    if ((info.st_mode & 0077) != 0) {
        return failed_precondition("secret key file " + quoted(path) +
                                   " is readable by others; expected mode 0600");
    }
    std::ifstream file(path, std::ios::binary);
    if (!file) {
        return io_error("opening secret key file " + quoted(path) + ": " + std::strerror(errno));
    }
    std::stringstream text;
    text << file.rdbuf();
    std::string hex = text.str();
    while (!hex.empty() && (hex.back() == '\n' || hex.back() == '\r' || hex.back() == ' ')) {
        hex.pop_back();
    }
    auto key = hex.size() == 2 * kKeyBytes ? detail::from_hex(hex)
                                           : Result<std::string>(invalid_argument("length"));
    OPENSSL_cleanse(hex.data(), hex.size());
    if (!key.ok()) {
        return data_loss("secret key file " + quoted(path) + ": expected " +
                         std::to_string(2 * kKeyBytes) + " hex digits");
    }
    return std::make_unique<SecretBox>(std::move(*key));
}

bool SecretBox::is_sealed(std::string_view value) { return value.starts_with(kPrefix); }

std::string SecretBox::sealed_key_id(std::string_view value) {
    if (!is_sealed(value)) {
        return {};
    }
    std::string_view rest = value.substr(kPrefix.size());
    if (rest.size() < kKeyIdHex + 1 || rest[kKeyIdHex] != ':') {
        return {};
    }
    return std::string(rest.substr(0, kKeyIdHex));
}

Result<std::string> SecretBox::seal(std::string_view identity, std::string_view secret) const {
    SLUICE_ASSIGN_OR_RETURN(std::string nonce, detail::random_bytes(kNonceBytes));
    CipherCtxPtr ctx(EVP_CIPHER_CTX_new());
    std::string out(secret.size(), '\0');
    std::string tag(kTagBytes, '\0');
    int length = 0;
    int final_length = 0;
    auto* out_bytes = reinterpret_cast<unsigned char*>(out.data());
    if (!ctx ||
        EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, bytes(key_), bytes(nonce)) != 1 ||
        EVP_EncryptUpdate(ctx.get(), nullptr, &length, bytes(identity),
                          static_cast<int>(identity.size())) != 1 ||
        EVP_EncryptUpdate(ctx.get(), out_bytes, &length, bytes(secret),
                          static_cast<int>(secret.size())) != 1 ||
        EVP_EncryptFinal_ex(ctx.get(), out_bytes + length, &final_length) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, static_cast<int>(kTagBytes),
                            tag.data()) != 1) {
        return internal_error(std::string(identity) + ": openssl could not encrypt the secret");
    }
    return std::string(kPrefix) + key_id_ + ":" + detail::to_hex(nonce + out + tag);
}

Result<std::string> SecretBox::open(std::string_view identity, std::string_view sealed) const {
    if (!is_sealed(sealed)) {
        return sealed_error(identity, "the stored value is not a sealed secret");
    }
    std::string_view rest = sealed.substr(kPrefix.size());
    if (rest.size() < kKeyIdHex + 1 || rest[kKeyIdHex] != ':') {
        return sealed_error(identity, "the sealed value is malformed");
    }
    std::string_view key_id = rest.substr(0, kKeyIdHex);
    if (key_id != key_id_) {
        return sealed_error(identity, "it was sealed with another key (key id " +
                                          std::string(key_id) + "; this server's key is " +
                                          key_id_ + ")");
    }
    auto raw = detail::from_hex(rest.substr(kKeyIdHex + 1));
    if (!raw.ok() || raw->size() < kNonceBytes + kTagBytes) {
        return sealed_error(identity, "the sealed value is malformed");
    }
    std::string_view all(*raw);
    std::string_view nonce = all.substr(0, kNonceBytes);
    std::string_view cipher = all.substr(kNonceBytes, all.size() - kNonceBytes - kTagBytes);
    std::string tag(all.substr(all.size() - kTagBytes));
    CipherCtxPtr ctx(EVP_CIPHER_CTX_new());
    std::string out(cipher.size(), '\0');
    int length = 0;
    int final_length = 0;
    auto* out_bytes = reinterpret_cast<unsigned char*>(out.data());
    if (!ctx ||
        EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, bytes(key_), bytes(nonce)) != 1 ||
        EVP_DecryptUpdate(ctx.get(), nullptr, &length, bytes(identity),
                          static_cast<int>(identity.size())) != 1 ||
        EVP_DecryptUpdate(ctx.get(), out_bytes, &length, bytes(cipher),
                          static_cast<int>(cipher.size())) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, static_cast<int>(kTagBytes),
                            tag.data()) != 1 ||
        EVP_DecryptFinal_ex(ctx.get(), out_bytes + length, &final_length) != 1) {
        OPENSSL_cleanse(out.data(), out.size());
        return sealed_error(identity,
                            "authentication failed (the value was altered or belongs to another "
                            "object)");
    }
    return out;
}

}  // namespace sluice::governance
