#include "connectors/detail/file_util.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <random>

namespace sluice::connectors::detail {

namespace {

Status errno_status(std::string_view what, const std::filesystem::path& path, int error) {
    return io_error(std::string(what) + " '" + path.string() + "': " + std::strerror(error));
}

struct Fd {
    int fd = -1;
    explicit Fd(int f) : fd(f) {}
    ~Fd() {
        if (fd >= 0) {
            ::close(fd);
        }
    }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
};

}  // namespace

Status write_file_atomically(const std::filesystem::path& path, std::string_view content) {
    std::random_device random;
    // Built by append: GCC 12 reports a false -Wrestrict on "." + string.
    std::string temp_name(".");
    temp_name.append(path.filename().string()).append(".tmp").append(std::to_string(random()));
    const std::filesystem::path temp = path.parent_path() / temp_name;
    {
        Fd file(::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
        if (file.fd < 0) {
            return errno_status("creating", temp, errno);
        }
        std::size_t written = 0;
        while (written < content.size()) {
            const ssize_t n = ::write(file.fd, content.data() + written, content.size() - written);
            if (n < 0) {
                if (errno == EINTR) {
                    continue;
                }
                const int error = errno;
                ::unlink(temp.c_str());
                return errno_status("writing", temp, error);
            }
            written += static_cast<std::size_t>(n);
        }
        if (::fsync(file.fd) != 0) {
            const int error = errno;
            ::unlink(temp.c_str());
            return errno_status("syncing", temp, error);
        }
    }
    if (::rename(temp.c_str(), path.c_str()) != 0) {
        const int error = errno;
        ::unlink(temp.c_str());
        return errno_status("renaming into", path, error);
    }
    // The rename is durable only once the folder's entry is.
    Fd dir(::open(path.parent_path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (dir.fd < 0 || ::fsync(dir.fd) != 0) {
        return errno_status("syncing folder of", path, errno);
    }
    return Status();
}

Result<std::string> read_file(const std::filesystem::path& path, std::uint64_t max_bytes) {
    Fd file(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (file.fd < 0) {
        if (errno == ENOENT) {
            return not_found("file '" + path.string() + "' does not exist");
        }
        return errno_status("opening", path, errno);
    }
    std::string content;
    std::array<char, 65536> buffer;
    while (true) {
        const ssize_t n = ::read(file.fd, buffer.data(), buffer.size());
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return errno_status("reading", path, errno);
        }
        if (n == 0) {
            return content;
        }
        content.append(buffer.data(), static_cast<std::size_t>(n));
        if (content.size() > max_bytes) {
            return Status(StatusCode::kPayloadTooLarge,
                          "file '" + path.string() + "': larger than the limit of " +
                              std::to_string(max_bytes) + " bytes");
        }
    }
}

std::string sha256_hex(std::string_view bytes) {
    std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
    unsigned int length = 0;
    EVP_Digest(bytes.data(), bytes.size(), digest.data(), &length, EVP_sha256(), nullptr);
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    out.reserve(length * 2);
    for (unsigned int i = 0; i < length; ++i) {
        out += kHex[digest[i] >> 4];
        out += kHex[digest[i] & 0xF];
    }
    return out;
}

}  // namespace sluice::connectors::detail
