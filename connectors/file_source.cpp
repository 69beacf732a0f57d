#include "connectors/file_source.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <set>

#include "common/log.h"
#include "connectors/detail/file_manifest.h"
#include "connectors/detail/file_scan.h"
#include "connectors/detail/file_util.h"
#include "connectors/parsers.h"

namespace sluice::connectors {

namespace fs = std::filesystem;
using detail::FileEntry;
using detail::FileOutcome;
using detail::Listed;
using detail::Manifest;
using nlohmann::json;

namespace detail {

struct FileSourceState {
    FileSourceConfig config;
    ManifestStore store;
    int inotify_fd = -1;
    int wake_fd = -1;
    std::map<std::string, Manifest> cache;  // a few recently used manifests by id

    FileSourceState(FileSourceConfig c, fs::path manifests)
        : config(std::move(c)), store(std::move(manifests)) {}
    ~FileSourceState() {
        if (inotify_fd >= 0) {
            ::close(inotify_fd);
        }
        if (wake_fd >= 0) {
            ::close(wake_fd);
        }
    }
    FileSourceState(const FileSourceState&) = delete;
    FileSourceState& operator=(const FileSourceState&) = delete;

    Result<Manifest> load(const std::string& id) {
        if (auto it = cache.find(id); it != cache.end()) {
            return it->second;
        }
        SLUICE_ASSIGN_OR_RETURN(Manifest manifest, store.get(id));
        remember(id, manifest);
        return manifest;
    }
    Result<std::string> save(const Manifest& manifest) {
        SLUICE_ASSIGN_OR_RETURN(std::string id, store.put(manifest));
        remember(id, manifest);
        return id;
    }
    void remember(const std::string& id, const Manifest& manifest) {
        if (cache.size() >= 4) {
            cache.clear();
        }
        cache[id] = manifest;
    }
};

}  // namespace detail

namespace {

// Where a checkpoint stands: a complete manifest `m`, or, in the middle of a change, files up
// to `p` as in manifest `t` (file `p` only up to document `k` when `k` is set) and the rest as
// in `m`.
struct Cursor {
    std::string m;
    std::string t;
    std::string p;
    std::optional<std::string> k;
    bool partial = false;
};

Result<Cursor> parse_cursor(std::string_view checkpoint) {
    Cursor cursor;
    if (checkpoint.empty()) {
        return cursor;
    }
    json value = json::parse(checkpoint, nullptr, false);
    // "v" read as json: value("v", 0) throws when it is not a number.
    if (!value.is_object() || value.value("v", json()) != 1 || !value.contains("m") ||
        !value["m"].is_string()) {
        return invalid_argument("file checkpoint '" + std::string(checkpoint.substr(0, 200)) +
                                "': expected {\"v\":1,\"m\":\"<manifest>\",...}");
    }
    cursor.m = value["m"].get<std::string>();
    if (value.contains("t")) {
        if (!value["t"].is_string() || !value.contains("p") || !value["p"].is_string()) {
            return invalid_argument("file checkpoint: 't' needs 'p'");
        }
        cursor.partial = true;
        cursor.t = value["t"].get<std::string>();
        cursor.p = value["p"].get<std::string>();
        if (value.contains("k")) {
            if (!value["k"].is_string()) {
                return invalid_argument("file checkpoint: 'k' must be a string");
            }
            cursor.k = value["k"].get<std::string>();
        }
    }
    return cursor;
}

Cursor complete(std::string id) {
    Cursor cursor;
    cursor.m = std::move(id);
    return cursor;
}

std::string format_cursor(const Cursor& cursor) {
    json value{{"v", 1}, {"m", cursor.m}};
    if (cursor.partial) {
        value["t"] = cursor.t;
        value["p"] = cursor.p;
        if (cursor.k) {
            value["k"] = *cursor.k;
        }
    }
    return value.dump(-1, ' ', true, json::error_handler_t::replace);
}

// File `p` cut after document `k`: documents up to k as in `target`, the rest as in `base`.
// The content hash is cleared so that the next poll reads the file again.
std::optional<FileEntry> merge_cut(const FileEntry* target, const FileEntry* base,
                                   const std::string& k) {
    FileEntry merged;
    if (target != nullptr) {
        for (const auto& [subkey, hash] : target->docs) {
            if (subkey <= k) {
                merged.docs.emplace(subkey, hash);
            }
        }
    }
    if (base != nullptr) {
        for (const auto& [subkey, hash] : base->docs) {
            if (subkey > k) {
                merged.docs.emplace(subkey, hash);
            }
        }
    }
    if (merged.docs.empty() && target == nullptr) {
        return std::nullopt;
    }
    return merged;
}

const FileEntry* find(const Manifest& manifest, const std::string& path) {
    auto it = manifest.find(path);
    return it == manifest.end() ? nullptr : &it->second;
}

// What a consumer holds at a cursor: see Cursor.
Manifest held_manifest(const Manifest& base, const Manifest& target, const std::string& p,
                       const std::optional<std::string>& k) {
    Manifest out;
    for (const auto& [path, entry] : target) {
        if (path < p || (path == p && !k)) {
            out.emplace(path, entry);
        }
    }
    for (const auto& [path, entry] : base) {
        if (path > p) {
            out.emplace(path, entry);
        }
    }
    if (k) {
        if (auto merged = merge_cut(find(target, p), find(base, p), *k)) {
            out.emplace(p, std::move(*merged));
        }
    }
    return out;
}

}  // namespace

Result<FileSourceConfig> file_config_from_json(const json& value) {
    if (!value.is_object()) {
        return invalid_argument("file source: expected an object");
    }
    FileSourceConfig config;
    for (const auto& [field, item] : value.items()) {
        if (field == "root") {
            if (!item.is_string() || item.get<std::string>().empty()) {
                return invalid_argument("root: expected a folder path");
            }
            config.root = item.get<std::string>();
        } else if (field == "rows") {
            SLUICE_ASSIGN_OR_RETURN(config.rows, row_mapping_from_json(item, "rows"));
        } else if (field == "acl") {
            SLUICE_ASSIGN_OR_RETURN(config.acl, acl_from_json(item, "acl"));
        } else if (field == "on_error") {
            SLUICE_ASSIGN_OR_RETURN(config.on_error, error_policy_from_json(item));
        } else if (field == "max_file_bytes") {
            if (!item.is_number_unsigned() || item.get<std::uint64_t>() == 0) {
                return invalid_argument("max_file_bytes: expected a positive integer");
            }
            config.max_file_bytes = item.get<std::uint64_t>();
        } else {
            return invalid_argument(field + ": unknown field");
        }
    }
    if (config.root.empty()) {
        return invalid_argument("root: expected a folder path");
    }
    return config;
}

json to_json(const FileSourceConfig& config) {
    return json{{"root", config.root},
                {"rows", to_json(config.rows)},
                {"acl", to_json(config.acl)},
                {"on_error", error_policy_name(config.on_error)},
                {"max_file_bytes", config.max_file_bytes}};
}

Result<std::unique_ptr<FileSource>> FileSource::open(FileSourceConfig config) {
    std::error_code ec;
    if (!fs::is_directory(config.root, ec)) {
        return not_found("file source root '" + config.root + "' is not a folder");
    }
    if (config.state_dir.empty()) {
        return invalid_argument("file source: no state folder");
    }
    auto state = std::make_unique<detail::FileSourceState>(
        config, fs::path(config.state_dir) / "manifests");
    SLUICE_RETURN_IF_ERROR(state->store.create());
    state->inotify_fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (state->inotify_fd < 0) {
        // Without inotify, wait() sleeps its full timeout and the periodic rescan still finds
        // every change.
        log::warn("connectors.file", "inotify unavailable; changes are found by rescans only",
                  {{"error", std::strerror(errno)}});
    }
    state->wake_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (state->wake_fd < 0) {
        return io_error(std::string("eventfd: ") + std::strerror(errno));
    }
    return std::make_unique<FileSource>(std::move(state));
}

FileSource::FileSource(std::unique_ptr<detail::FileSourceState> state)
    : state_(std::move(state)) {}

FileSource::~FileSource() = default;

Result<Batch> FileSource::poll(std::string_view checkpoint, const PollOptions& options) {
    SLUICE_ASSIGN_OR_RETURN(Cursor cursor, parse_cursor(checkpoint));
    Manifest held;
    if (!cursor.m.empty()) {
        SLUICE_ASSIGN_OR_RETURN(held, state_->load(cursor.m));
    }
    Manifest base = held;
    if (cursor.partial) {
        SLUICE_ASSIGN_OR_RETURN(Manifest target, state_->load(cursor.t));
        held = held_manifest(base, target, cursor.p, cursor.k);
    }
    const FileSourceConfig& config = state_->config;
    // A root that is gone or unreadable fails the poll: read as empty it would delete every
    // document.
    using Listing = std::map<std::string, Listed>;
    SLUICE_ASSIGN_OR_RETURN(const Listing listing,
                            detail::list_files(config.root, state_->inotify_fd));
    std::map<std::string, std::string> gone_by_hash;
    std::set<std::string> paths;
    for (const auto& [path, entry] : held) {
        paths.insert(path);
        if (!listing.contains(path) && !entry.hash.empty()) {
            gone_by_hash.emplace(entry.hash, path);
        }
    }
    for (const auto& [path, listed] : listing) {
        paths.insert(path);
    }

    const std::size_t limit = std::max<std::size_t>(options.max_events, 1);
    Batch batch;
    Manifest next;  // what the consumer holds after this batch
    Manifest scanned;  // the new entries of the files processed, cut file included whole
    std::optional<std::string> stop_path;
    std::optional<std::string> cut_subkey;
    std::optional<std::string> last_done;
    for (const std::string& path : paths) {
        const FileEntry* before = find(held, path);
        auto listed = listing.find(path);
        FileOutcome outcome = detail::process_file(
            path, before, listed == listing.end() ? nullptr : &listed->second, gone_by_hash,
            config);
        if (!outcome.errors.empty() && config.on_error == ErrorPolicy::kPause) {
            batch.errors = std::move(outcome.errors);
            batch.paused = true;
            stop_path = path;
            break;
        }
        const std::size_t room = limit - batch.events.size();
        if (outcome.events.size() > room) {
            stop_path = path;
            if (room > 0) {
                cut_subkey = outcome.events[room - 1].first;
                for (std::size_t i = 0; i < room; ++i) {
                    batch.events.push_back(std::move(outcome.events[i].second));
                }
                for (ErrorRecord& error : outcome.errors) {
                    batch.errors.push_back(std::move(error));
                }
                if (outcome.entry) {
                    scanned.emplace(path, *outcome.entry);
                }
                if (auto merged = merge_cut(outcome.entry ? &*outcome.entry : nullptr, before,
                                            *cut_subkey)) {
                    next.emplace(path, std::move(*merged));
                }
            }
            break;
        }
        for (auto& [subkey, event] : outcome.events) {
            batch.events.push_back(std::move(event));
        }
        for (ErrorRecord& error : outcome.errors) {
            batch.errors.push_back(std::move(error));
        }
        if (outcome.entry) {
            scanned.emplace(path, *outcome.entry);
            next.emplace(path, std::move(*outcome.entry));
        }
        last_done = path;
    }
    if (!stop_path) {
        batch.caught_up = true;
        SLUICE_ASSIGN_OR_RETURN(std::string id, state_->save(next));
        batch.checkpoint = format_cursor(complete(id));
        return batch;
    }
    // Files not reached keep what the consumer held.
    for (const auto& [path, entry] : held) {
        if (path > *stop_path || (path == *stop_path && !cut_subkey)) {
            next.emplace(path, entry);
        }
    }
    if (batch.events.empty() && !cut_subkey) {
        batch.checkpoint = std::string(checkpoint);  // nothing applied: the position stands
        return batch;
    }
    // Prefer a cursor over the unchanged base, so that a large file cut over many batches
    // stores its manifest once; fall back to storing what the consumer holds.
    Cursor out;
    out.m = cursor.m;
    if (cut_subkey) {
        out.p = *stop_path;
        out.k = cut_subkey;
    } else if (last_done) {
        out.p = *last_done;
    }
    if (!out.m.empty() && !out.p.empty() && held_manifest(base, scanned, out.p, out.k) == next) {
        SLUICE_ASSIGN_OR_RETURN(out.t, state_->save(scanned));
        out.partial = true;
        batch.checkpoint = format_cursor(out);
        return batch;
    }
    SLUICE_ASSIGN_OR_RETURN(std::string id, state_->save(next));
    batch.checkpoint = format_cursor(complete(id));
    return batch;
}

Status FileSource::acknowledge(std::string_view checkpoint) {
    SLUICE_ASSIGN_OR_RETURN(Cursor cursor, parse_cursor(checkpoint));
    if (cursor.m.empty()) {
        return Status();
    }
    std::vector<std::string> keep{cursor.m};
    if (cursor.partial) {
        keep.push_back(cursor.t);
    }
    SLUICE_RETURN_IF_ERROR(detail::write_file_atomically(
        fs::path(state_->config.state_dir) / "acknowledged", std::string(checkpoint)));
    state_->cache.clear();  // it may hold pruned manifests
    return state_->store.prune_older_than(keep);
}

Result<bool> FileSource::wait(std::chrono::milliseconds timeout) {
    std::array<pollfd, 2> fds{{{state_->wake_fd, POLLIN, 0}, {state_->inotify_fd, POLLIN, 0}}};
    const nfds_t count = state_->inotify_fd >= 0 ? 2 : 1;
    const int ready = ::poll(fds.data(), count, static_cast<int>(timeout.count()));
    if (ready < 0) {
        if (errno == EINTR) {
            return false;
        }
        return io_error(std::string("waiting for file changes: ") + std::strerror(errno));
    }
    if (fds[0].revents & POLLIN) {
        std::uint64_t value = 0;
        [[maybe_unused]] ssize_t n = ::read(state_->wake_fd, &value, sizeof(value));
    }
    bool changed = false;
    if (count == 2 && (fds[1].revents & POLLIN)) {
        alignas(inotify_event) std::array<char, 16384> buffer;
        while (::read(state_->inotify_fd, buffer.data(), buffer.size()) > 0) {
            changed = true;
        }
    }
    return changed;
}

void FileSource::wake() {
    const std::uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(state_->wake_fd, &one, sizeof(one));
}

Result<json> FileSource::status() {
    json out{{"kind", "file"}, {"root", state_->config.root}};
    auto acknowledged =
        detail::read_file(fs::path(state_->config.state_dir) / "acknowledged", 1 << 20);
    if (!acknowledged) {
        out["acknowledged"] = nullptr;
        return out;
    }
    out["acknowledged"] = *acknowledged;
    auto cursor = parse_cursor(*acknowledged);
    if (cursor && !cursor->m.empty()) {
        auto manifest = state_->load(cursor->m);
        if (manifest) {
            std::size_t documents = 0;
            json errors = json::array();
            for (const auto& [path, entry] : *manifest) {
                documents += entry.docs.size();
                if (!entry.error.empty()) {
                    errors.push_back({{"path", path}, {"error", entry.error}});
                }
            }
            out["files"] = manifest->size();
            out["documents"] = documents;
            out["errors"] = std::move(errors);
        }
    }
    return out;
}

}  // namespace sluice::connectors
