#pragma once
// The file source's manifest: what a consumer holds, per file, and its content-addressed store.
//
// Thread safety: value types; a ManifestStore is owned by one thread.

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "common/result.h"

namespace sluice::connectors::detail {

struct FileEntry {
    std::string hash;  // content hash; "" forces a re-read (a file cut in the middle of a batch)
    std::uint64_t size = 0;
    std::int64_t mtime_ns = 0;
    std::map<std::string, std::string> docs;  // document subkey ("" for the whole file) → hash
    std::string error;                        // why this version could not be read

    friend bool operator==(const FileEntry&, const FileEntry&) = default;
};

using Manifest = std::map<std::string, FileEntry>;  // relative path → entry

std::string serialize_manifest(const Manifest& manifest);
Result<Manifest> parse_manifest(std::string_view text);

class ManifestStore {
public:
    explicit ManifestStore(std::filesystem::path dir) : dir_(std::move(dir)) {}

    Status create() const;
    // Stores the manifest (if not yet stored) and returns its id (SHA-256 of its serial form).
    Result<std::string> put(const Manifest& manifest) const;
    // Errors: kFailedPrecondition when the id is unknown (removed after a later acknowledge).
    Result<Manifest> get(const std::string& id) const;
    // Removes manifests last stored before the oldest of `keep`; never those in `keep`.
    Status prune_older_than(const std::vector<std::string>& keep) const;

private:
    std::filesystem::path path_of(const std::string& id) const;
    std::filesystem::path dir_;
};

}  // namespace sluice::connectors::detail
