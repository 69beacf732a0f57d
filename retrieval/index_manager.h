#pragma once
// The indexes of one data directory: each lives in its own folder under `root` (a chunk store
// and a vector snapshot), named after the index. Opened indexes are shared with the requests
// that use them; drop() unlists an index at once and removes its folder after the last request
// holding it has finished.
//
// Thread safety: thread-safe.

#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/result.h"
#include "retrieval/index.h"

namespace sluice::retrieval {

class IndexManager {
public:
    // Opens every index found under `root` (created when missing). An index that fails to open
    // is logged and left out; its folder is untouched, and get() and create() of its name say
    // why it could not be opened (an offline command without the server's model, for one, or a
    // folder whose stored settings name another index).
    static Result<std::unique_ptr<IndexManager>> open(const std::filesystem::path& root,
                                                      IndexDeps deps);

    // kAlreadyExists when the name is taken (by a left-out index too, with its reason);
    // kInvalidArgument for bad settings.
    Result<std::shared_ptr<Index>> create(const IndexSettings& settings);
    // kNotFound when there is no such index; kFailedPrecondition, with the reason, for one that
    // open() left out.
    Result<std::shared_ptr<Index>> get(const std::string& name) const;
    // Removes the index and its files. kNotFound when there is no such index.
    Status drop(const std::string& name);
    std::vector<std::string> list() const;

    // Writes every index's vector snapshot (at shutdown).
    Status snapshot_all();

    struct Tag {};
    IndexManager(Tag, std::filesystem::path root, IndexDeps deps);

private:
    std::filesystem::path root_;
    IndexDeps deps_;
    mutable std::mutex mutex_;
    std::map<std::string, std::shared_ptr<Index>> indexes_;  // GUARDED_BY(mutex_)
    std::map<std::string, Status> left_out_;  // GUARDED_BY(mutex_): why each failed to open
};

}  // namespace sluice::retrieval
