#include "app/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace sluice::app {
namespace {

std::string errno_text() { return std::strerror(errno); }

// Closes a descriptor on every path out of a function.
struct FdCloser {
    int fd;
    ~FdCloser() {
        if (fd >= 0) {
            ::close(fd);
        }
    }
};

}  // namespace

Status write_file_atomically(const std::filesystem::path& target, std::string_view contents,
                             unsigned mode) {
    std::filesystem::path temporary = target;
    temporary += ".tmp." + std::to_string(::getpid());
    int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0) {
        return io_error("creating '" + temporary.string() + "': " + errno_text());
    }
    FdCloser closer{fd};
    std::size_t written = 0;
    while (written < contents.size()) {
        ssize_t n = ::write(fd, contents.data() + written, contents.size() - written);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            Status status = io_error("writing '" + temporary.string() + "': " + errno_text());
            ::unlink(temporary.c_str());
            return status;
        }
        written += static_cast<std::size_t>(n);
    }
    if (::fsync(fd) != 0) {
        Status status = io_error("syncing '" + temporary.string() + "': " + errno_text());
        ::unlink(temporary.c_str());
        return status;
    }
    if (::rename(temporary.c_str(), target.c_str()) != 0) {
        Status status = io_error("renaming '" + temporary.string() + "' to '" + target.string() +
                                 "': " + errno_text());
        ::unlink(temporary.c_str());
        return status;
    }
    // The rename is durable only once the folder's entry is on disk.
    std::filesystem::path folder = target.parent_path().empty() ? "." : target.parent_path();
    int dir_fd = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd < 0) {
        return io_error("opening folder '" + folder.string() + "': " + errno_text());
    }
    FdCloser dir_closer{dir_fd};
    if (::fsync(dir_fd) != 0) {
        return io_error("syncing folder '" + folder.string() + "': " + errno_text());
    }
    return Status();
}

}  // namespace sluice::app
