#pragma once
// The data directory (--data-dir): one per running server. Opening it creates the folder with
// owner-only permissions (or, for commands that only use an existing one, refuses a missing
// folder and one that holds no catalog.db), takes an exclusive flock on LOCK (held until the
// DataDir is destroyed, released by the kernel if the process dies), and reads or writes FORMAT,
// the on-disk format version, so that a later release can migrate or refuse an older layout.
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

// Whether a command may create the data directory it is given.
enum class DataDirMode {
    // Commands that initialise one: `sluice serve`, `sluice token create`, `sluice source add`,
    // `sluice eval import`. The folder is created (owner-only) when missing.
    kCreate,
    // Commands that read or change what an existing one holds (`sluice source list`, `sluice
    // search`, `sluice audit verify`...): a missing folder is refused, so that a mistyped
    // --data-dir fails instead of leaving an empty data directory behind, and so is a folder
    // that holds no data directory (no catalog.db, which every initialising command makes):
    // opening one there would create it in whatever folder was named.
    kMustExist,
};

// The one check every offline command makes before it opens anything in a data directory,
// without taking its lock (a running server may hold it). kCreate: ensure_private_folder().
// kMustExist: creates and changes nothing; kNotFound naming the path when it does not exist or
// holds no catalog.db, kFailedPrecondition when it is not a folder, kIoError when it cannot be
// examined.
Status prepare_data_dir(const std::filesystem::path& path, DataDirMode mode);

class DataDir {
public:
    // prepare_data_dir(path, mode), then the lock and FORMAT (an existing folder open to others
    // is restricted to its owner either way). Errors: those of prepare_data_dir;
    // kFailedPrecondition when another process holds the lock (the message names its pid) or
    // when FORMAT is newer than this build; kDataLoss when FORMAT is unreadable; kIoError when
    // the folder cannot be created or locked.
    static Result<std::unique_ptr<DataDir>> open(const std::filesystem::path& path,
                                                 DataDirMode mode);

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
