#pragma once
// The data directory (--data-dir): one per running server. Opening it creates the folder with
// owner-only permissions, takes an exclusive flock on LOCK (held until the DataDir is
// destroyed, released by the kernel if the process dies), and reads or writes FORMAT, the
// on-disk format version, so that a later release can migrate or refuse an older layout.
//
// Thread safety: immutable after open().

#include <filesystem>
#include <memory>
#include <string>

#include "common/result.h"

namespace sluice::app {

// The layout this build reads and writes. Bump it with a migration when the layout changes.
inline constexpr int kDataFormatVersion = 1;

// Creates the folder `path` (not its parents) with owner-only permissions, or restricts an
// existing one to its owner. For the tools that write into a data directory while a server may
// hold its lock (`sluice token create`). Errors: kIoError, kFailedPrecondition (not a folder).
Status ensure_private_folder(const std::filesystem::path& path);

class DataDir {
public:
    // Errors: kFailedPrecondition when another process holds the lock (the message names its
    // pid) or when FORMAT is newer than this build; kDataLoss when FORMAT is unreadable;
    // kIoError when the folder cannot be created or locked.
    static Result<std::unique_ptr<DataDir>> open(const std::filesystem::path& path);

    ~DataDir();
    DataDir(const DataDir&) = delete;
    DataDir& operator=(const DataDir&) = delete;

    const std::filesystem::path& path() const { return path_; }
    int format_version() const { return format_version_; }

    // Use open(); the tag keeps construction inside this class.
    struct OpenTag {};
    DataDir(OpenTag, std::filesystem::path path, int lock_fd, int format_version);

private:

    std::filesystem::path path_;
    int lock_fd_;
    int format_version_;
};

}  // namespace sluice::app
