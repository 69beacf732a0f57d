#pragma once
// The file source's scan: listing the tree, reading and parsing a changed file, and comparing
// its documents with what the consumer holds.
//
// Thread safety: pure functions over the file system.

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "connectors/change_event.h"
#include "connectors/detail/file_manifest.h"
#include "connectors/file_source.h"

namespace sluice::connectors::detail {

struct Listed {
    std::uint64_t size = 0;
    std::int64_t mtime_ns = 0;
    // The file's name is not valid UTF-8: it is listed under the name with those bytes written
    // "\xNN", and becomes an error record, never a document (a key must be JSON text).
    bool bad_name = false;
};

// Relative path → size and mtime of every readable file of a known format, hidden files,
// folders and symbolic links left out. A path that is not valid UTF-8 is listed escaped
// (escape_invalid_utf8) and marked `bad_name`; a valid path spelt the same way wins. Adds an
// inotify watch per folder when `inotify_fd` >= 0. Errors: kUnavailable naming the root when it is
// not a folder that can be read (renamed, unmounted) or the listing stops early: a partial listing
// would read as deleted files.
Result<std::map<std::string, Listed>> list_files(const std::filesystem::path& root, int inotify_fd);

// "<path>" or "<path>#<subkey>", with '%' and '#' in the path escaped.
std::string document_key(const std::string& path, const std::string& subkey);

// One file's part of a poll: its entry for the new manifest (none: the file is gone), its
// events in subkey order, and its errors.
struct FileOutcome {
    std::optional<FileEntry> entry;
    std::vector<std::pair<std::string, ChangeEvent>> events;
    std::vector<ErrorRecord> errors;
};

// Compares the file as it is (`listed`; null when gone) with what the consumer holds (`held`;
// null when new). `gone_by_hash` maps the content hash of each vanished file to its path, to
// mark renames.
FileOutcome process_file(const std::string& path, const FileEntry* held, const Listed* listed,
                         const std::map<std::string, std::string>& gone_by_hash,
                         const FileSourceConfig& config);

}  // namespace sluice::connectors::detail
