#include "connectors/detail/file_manifest.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>

#include <nlohmann/json.hpp>

#include "connectors/detail/file_util.h"

namespace sluice::connectors::detail {

using nlohmann::json;

std::string serialize_manifest(const Manifest& manifest) {
    json files = json::object();
    for (const auto& [path, entry] : manifest) {
        json item{{"h", entry.hash}, {"s", entry.size}, {"m", entry.mtime_ns}, {"d", entry.docs}};
        if (!entry.error.empty()) {
            item["e"] = entry.error;
        }
        files[path] = std::move(item);
    }
    // Keys are sorted (std::map, json object): equal manifests serialise to equal bytes.
    return json{{"v", 1}, {"files", std::move(files)}}.dump(-1, ' ', false,
                                                          json::error_handler_t::replace);
}

Result<Manifest> parse_manifest(std::string_view text) {
    json value = json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (!value.is_object() || value.value("v", 0) != 1 || !value.contains("files") ||
        !value["files"].is_object()) {
        return data_loss("file manifest: expected {\"v\":1,\"files\":{...}}");
    }
    Manifest manifest;
    for (const auto& [path, item] : value["files"].items()) {
        if (!item.is_object() || !item.contains("h") || !item["h"].is_string() ||
            !item.contains("d") || !item["d"].is_object()) {
            return data_loss("file manifest: entry '" + path + "' is malformed");
        }
        FileEntry entry;
        entry.hash = item["h"].get<std::string>();
        entry.size = item.value("s", std::uint64_t{0});
        entry.mtime_ns = item.value("m", std::int64_t{0});
        entry.error = item.value("e", std::string());
        for (const auto& [subkey, hash] : item["d"].items()) {
            if (!hash.is_string()) {
                return data_loss("file manifest: entry '" + path + "' has a bad document hash");
            }
            entry.docs.emplace(subkey, hash.get<std::string>());
        }
        manifest.emplace(path, std::move(entry));
    }
    return manifest;
}

std::filesystem::path ManifestStore::path_of(const std::string& id) const {
    return dir_ / (id + ".json");
}

Status ManifestStore::create() const {
    std::error_code ec;
    std::filesystem::create_directories(dir_, ec);
    if (ec) {
        return io_error("creating manifest folder '" + dir_.string() + "': " + ec.message());
    }
    return Status();
}

Result<std::string> ManifestStore::put(const Manifest& manifest) const {
    const std::string text = serialize_manifest(manifest);
    const std::string id = sha256_hex(text).substr(0, 32);
    const std::filesystem::path path = path_of(id);
    // Touch an existing one: pruning goes by when a manifest was last produced.
    if (::utimensat(AT_FDCWD, path.c_str(), nullptr, 0) == 0) {
        return id;
    }
    SLUICE_RETURN_IF_ERROR(write_file_atomically(path, text));
    return id;
}

Result<Manifest> ManifestStore::get(const std::string& id) const {
    if (id.empty() || id.find_first_not_of("0123456789abcdef") != std::string::npos) {
        return invalid_argument("file checkpoint names manifest '" + id +
                                "': expected lower-case hex");
    }
    auto text = read_file(path_of(id), 1ull << 32);
    if (!text) {
        if (text.status().code() == StatusCode::kNotFound) {
            return failed_precondition("file checkpoint names manifest " + id +
                                       ", which is no longer kept (older than the acknowledged "
                                       "checkpoint); start again from \"\"");
        }
        return text.status();
    }
    return parse_manifest(*text);
}

Status ManifestStore::prune_older_than(const std::vector<std::string>& keep) const {
    struct timespec oldest {};
    bool found = false;
    for (const std::string& id : keep) {
        struct stat info {};
        if (::stat(path_of(id).c_str(), &info) != 0) {
            continue;
        }
        if (!found || info.st_mtim.tv_sec < oldest.tv_sec ||
            (info.st_mtim.tv_sec == oldest.tv_sec && info.st_mtim.tv_nsec < oldest.tv_nsec)) {
            oldest = info.st_mtim;
            found = true;
        }
    }
    if (!found) {
        return Status();
    }
    std::error_code ec;
    for (const auto& item : std::filesystem::directory_iterator(dir_, ec)) {
        struct stat info {};
        if (item.path().extension() != ".json" || ::stat(item.path().c_str(), &info) != 0) {
            continue;
        }
        const bool older = info.st_mtim.tv_sec < oldest.tv_sec ||
                           (info.st_mtim.tv_sec == oldest.tv_sec &&
                            info.st_mtim.tv_nsec < oldest.tv_nsec);
        const std::string id = item.path().stem().string();
        if (older && std::find(keep.begin(), keep.end(), id) == keep.end()) {
            std::filesystem::remove(item.path(), ec);
        }
    }
    return Status();
}

}  // namespace sluice::connectors::detail
