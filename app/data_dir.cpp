#include "app/data_dir.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "app/atomic_file.h"
#include "common/log.h"
#include "governance/governance.h"

namespace sluice::app {
namespace {

std::string errno_text() { return std::strerror(errno); }

}  // namespace

Status ensure_private_folder(const std::filesystem::path& path) {
    if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) {
        return io_error("creating data directory '" + path.string() + "': " + errno_text());
    }
    struct stat info {};
    if (::stat(path.c_str(), &info) != 0) {
        return io_error("data directory '" + path.string() + "': " + errno_text());
    }
    if (!S_ISDIR(info.st_mode)) {
        return failed_precondition("data directory '" + path.string() +
                                   "' exists and is not a directory");
    }
    if ((info.st_mode & 0077) != 0) {
        // Catalog, tokens and audit live here: others must not read them.
        if (::chmod(path.c_str(), 0700) != 0) {
            return io_error("restricting data directory '" + path.string() +
                            "' to its owner: " + errno_text());
        }
        log::warn("storage", "data directory was readable by others; restricted to 0700",
                  {{"path", path.string()}});
    }
    return Status();
}

Status prepare_data_dir(const std::filesystem::path& path, DataDirMode mode) {
    if (mode == DataDirMode::kCreate) {
        return ensure_private_folder(path);
    }
    struct stat info {};
    if (::stat(path.c_str(), &info) != 0) {
        if (errno == ENOENT || errno == ENOTDIR) {
            return not_found("data directory '" + path.string() +
                             "' does not exist; this command only uses an existing one (check "
                             "--data-dir, or /storage/data_dir of the configuration)");
        }
        return io_error("data directory '" + path.string() + "': " + errno_text());
    }
    if (!S_ISDIR(info.st_mode)) {
        return failed_precondition("data directory '" + path.string() +
                                   "' exists and is not a directory");
    }
    // catalog.db is what every initialising command makes first (Governance::open); without it
    // the folder is one this command would turn into a data directory by opening it.
    const std::filesystem::path catalog = path / governance::kCatalogFile;
    if (::stat(catalog.c_str(), &info) != 0) {
        if (errno == ENOENT) {
            return not_found("folder '" + path.string() + "' holds no sluice data directory (no " +
                             std::string(governance::kCatalogFile) +
                             "); this command only uses an existing one (check --data-dir, or "
                             "/storage/data_dir of the configuration)");
        }
        return io_error("'" + catalog.string() + "': " + errno_text());
    }
    return Status();
}

namespace {

Result<int> read_or_create_format(const std::filesystem::path& dir) {
    std::filesystem::path format_path = dir / "FORMAT";
    std::ifstream in(format_path);
    if (!in) {
        nlohmann::json format = {{"format_version", kDataFormatVersion}, {"product", "sluice"}};
        SLUICE_RETURN_IF_ERROR(write_file_atomically(format_path, format.dump() + "\n"));
        return kDataFormatVersion;
    }
    std::stringstream text;
    text << in.rdbuf();
    nlohmann::json format = nlohmann::json::parse(text.str(), nullptr, false);
    if (format.is_discarded() || !format.is_object() || !format.contains("format_version") ||
        !format["format_version"].is_number_integer()) {
        return data_loss("'" + format_path.string() +
                         "' is not a format file: expected {\"format_version\": N}");
    }
    int version = format["format_version"].get<int>();
    if (version > kDataFormatVersion) {
        return failed_precondition("data directory '" + dir.string() + "' has format version " +
                                   std::to_string(version) + ", this build reads up to " +
                                   std::to_string(kDataFormatVersion) + ": use a newer sluice");
    }
    if (version < 1) {
        return data_loss("'" + format_path.string() + "': format_version " +
                         std::to_string(version) + " is not valid");
    }
    return version;
}

std::string read_lock_owner(int fd) {
    char buffer[64] = {};
    ssize_t n = ::pread(fd, buffer, sizeof(buffer) - 1, 0);
    std::string owner = n > 0 ? std::string(buffer, static_cast<std::size_t>(n)) : "";
    while (!owner.empty() && (owner.back() == '\n' || owner.back() == ' ')) {
        owner.pop_back();
    }
    return owner.empty() ? "unknown" : owner;
}

}  // namespace

DataDir::DataDir(OpenTag, std::filesystem::path path, int lock_fd, int format_version)
    : path_(std::move(path)), lock_fd_(lock_fd), format_version_(format_version) {}

DataDir::~DataDir() {
    if (lock_fd_ >= 0) {
        ::close(lock_fd_);  // releases the flock
    }
}

Result<std::unique_ptr<DataDir>> DataDir::open(const std::filesystem::path& requested,
                                               DataDirMode mode) {
    std::error_code ec;
    std::filesystem::path path = std::filesystem::absolute(requested, ec).lexically_normal();
    if (ec) {
        return io_error("data directory '" + requested.string() + "': " + ec.message());
    }
    SLUICE_RETURN_IF_ERROR(prepare_data_dir(path, mode));
    SLUICE_RETURN_IF_ERROR(ensure_private_folder(path));

    std::filesystem::path lock_path = path / "LOCK";
    int fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        return io_error("opening '" + lock_path.string() + "': " + errno_text());
    }
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int lock_errno = errno;
        std::string owner = read_lock_owner(fd);
        ::close(fd);
        if (lock_errno == EWOULDBLOCK) {
            return failed_precondition("data directory '" + path.string() +
                                       "' is in use by another sluice process (pid " + owner +
                                       "); stop it or choose another --data-dir");
        }
        return io_error("locking '" + lock_path.string() + "': " + std::strerror(lock_errno));
    }
    // The pid is informational, for the message above; the flock is what excludes.
    std::string pid = std::to_string(::getpid()) + "\n";
    if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, pid.data(), pid.size(), 0) < 0) {
        log::warn("storage", "cannot record pid in lock file",
                  {{"path", lock_path.string()}, {"error", errno_text()}});
    }

    auto version = read_or_create_format(path);
    if (!version.ok()) {
        ::close(fd);
        return version.status();
    }
    return std::make_unique<DataDir>(OpenTag{}, path, fd, *version);
}

}  // namespace sluice::app
