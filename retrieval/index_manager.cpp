#include "retrieval/index_manager.h"

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "common/log.h"

namespace sluice::retrieval {
namespace {

std::shared_ptr<Index> share(std::unique_ptr<Index> index) {
    return std::shared_ptr<Index>(std::move(index));
}

// An index is built under this prefix and renamed into place, so that a process killed while
// creating it leaves no half-made index under the real name (the prefix is not a valid index
// name, so open() never mistakes it for one, and removes it).
const char* const kCreatingPrefix = ".creating-";

Status sync_folder(const std::filesystem::path& dir) {
    int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        return io_error("cannot open folder '" + dir.string() + "' to sync it");
    }
    int rc = ::fsync(fd);
    ::close(fd);
    if (rc != 0) {
        return io_error("cannot sync folder '" + dir.string() + "'");
    }
    return Status::ok_status();
}

}  // namespace

IndexManager::IndexManager(Tag, std::filesystem::path root, IndexDeps deps)
    : root_(std::move(root)), deps_(std::move(deps)) {}

Result<std::unique_ptr<IndexManager>> IndexManager::open(const std::filesystem::path& root,
                                                         IndexDeps deps) {
    std::error_code ec;
    std::filesystem::create_directories(root, ec);
    if (ec) {
        return io_error("cannot create index folder '" + root.string() + "': " + ec.message());
    }
    auto manager = std::make_unique<IndexManager>(Tag{}, root, std::move(deps));
    for (const auto& entry : std::filesystem::directory_iterator(root, ec)) {
        if (!entry.is_directory(ec)) {
            continue;
        }
        std::string name = entry.path().filename().string();
        if (name.rfind(kCreatingPrefix, 0) == 0) {
            log::warn("retrieval", "removing an index whose creation was interrupted",
                      {{"folder", name}});
            std::error_code remove_ec;
            std::filesystem::remove_all(entry.path(), remove_ec);
            continue;
        }
        if (!validate_index_name(name).ok()) {
            continue;
        }
        auto index = Index::open(entry.path(), manager->deps_);
        if (!index.ok()) {
            log::error("retrieval", "index left out: cannot open",
                       {{"index", name}, {"error", index.status().message()}});
            manager->left_out_[name] = index.status();
            continue;
        }
        // The folder names the index here, its settings everywhere else (describe, and the
        // name app/ drops it by): a stored name that is another index's (a line break an
        // earlier build let into a setting adds a "name=" line) would answer to one name and
        // drop the other.
        if ((*index)->settings().name != name) {
            Status mismatch = failed_precondition("index folder '" + name +
                                                  "' holds the settings of an index named '" +
                                                  (*index)->settings().name + "'");
            log::error("retrieval", "index left out: cannot open",
                       {{"index", name}, {"error", mismatch.message()}});
            manager->left_out_[name] = mismatch;
            continue;
        }
        manager->indexes_[name] = share(std::move(index).value());
    }
    if (ec) {
        return io_error("cannot list index folder '" + root.string() + "': " + ec.message());
    }
    return manager;
}

Result<std::shared_ptr<Index>> IndexManager::create(const IndexSettings& settings) {
    SLUICE_RETURN_IF_ERROR(validate(settings));
    std::lock_guard lock(mutex_);
    std::error_code ec;
    if (auto left = left_out_.find(settings.name); left != left_out_.end()) {
        return Status(StatusCode::kAlreadyExists,
                      "index '" + settings.name +
                          "' already exists, but could not be opened: " + left->second.message());
    }
    if (indexes_.count(settings.name) != 0 || std::filesystem::exists(root_ / settings.name, ec)) {
        return Status(StatusCode::kAlreadyExists,
                      "index '" + settings.name + "' already exists");
    }
    const auto building = root_ / (kCreatingPrefix + settings.name);
    std::filesystem::remove_all(building, ec);
    auto created = Index::create(building, settings, deps_);
    if (!created.ok()) {
        std::filesystem::remove_all(building, ec);
        return created.status();
    }
    created->reset();  // closed before its folder moves
    std::filesystem::rename(building, root_ / settings.name, ec);
    if (ec) {
        std::string message = "moving the new index into place: ";
        message += ec.message();
        std::filesystem::remove_all(building, ec);
        return io_error(message);
    }
    SLUICE_RETURN_IF_ERROR(sync_folder(root_));
    SLUICE_ASSIGN_OR_RETURN(auto opened, Index::open(root_ / settings.name, deps_));
    auto index = share(std::move(opened));
    indexes_[settings.name] = index;
    return index;
}

Result<std::shared_ptr<Index>> IndexManager::get(const std::string& name) const {
    std::lock_guard lock(mutex_);
    auto it = indexes_.find(name);
    if (it == indexes_.end()) {
        if (auto left = left_out_.find(name); left != left_out_.end()) {
            return failed_precondition(
                "index '" + name + "' exists, but could not be opened: " + left->second.message());
        }
        return not_found("index '" + name + "' does not exist");
    }
    return it->second;
}

Status IndexManager::drop(const std::string& name) {
    std::shared_ptr<Index> index;
    {
        std::lock_guard lock(mutex_);
        auto it = indexes_.find(name);
        if (it == indexes_.end()) {
            return not_found("index '" + name + "' does not exist");
        }
        index = std::move(it->second);
        indexes_.erase(it);
    }
    // Requests still holding the index finish on it; the folder goes once they let go. Waiting
    // here keeps drop() synchronous: when it returns, the index and its files are gone. A
    // holder that does not let go in time (a long-running user of the index) leaves it listed
    // and whole, and the drop refused, rather than a drop that never returns.
    constexpr auto kLetGo = std::chrono::seconds(30);
    std::filesystem::path dir = index->dir();
    std::weak_ptr<Index> watch = index;
    index.reset();
    const auto deadline = std::chrono::steady_clock::now() + kLetGo;
    while (!watch.expired()) {
        if (std::chrono::steady_clock::now() >= deadline) {
            if (auto held = watch.lock()) {
                std::lock_guard lock(mutex_);
                indexes_.emplace(name, std::move(held));
                return failed_precondition("index '" + name + "' is still in use after " +
                                           std::to_string(kLetGo.count()) +
                                           " s; it was not dropped");
            }
            break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
    if (ec) {
        return io_error("removing index folder '" + dir.string() + "': " + ec.message());
    }
    return Status::ok_status();
}

std::vector<std::string> IndexManager::list() const {
    std::lock_guard lock(mutex_);
    std::vector<std::string> names;
    for (const auto& [name, index] : indexes_) {
        names.push_back(name);
    }
    return names;
}

Status IndexManager::snapshot_all() {
    std::vector<std::shared_ptr<Index>> all;
    {
        std::lock_guard lock(mutex_);
        for (const auto& [name, index] : indexes_) {
            all.push_back(index);
        }
    }
    Status first;
    for (const auto& index : all) {
        Status saved = index->snapshot();
        if (!saved.ok() && first.ok()) {
            first = saved.with_context("index '" + index->settings().name + "'");
        }
    }
    return first;
}

}  // namespace sluice::retrieval
