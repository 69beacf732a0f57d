#include "app/local_index.h"

#include "app/index_deps.h"

namespace sluice::app {

Result<LocalIndex> open_local_index(const ConfigOptions& options, const std::string& name) {
    LocalIndex out;
    SLUICE_ASSIGN_OR_RETURN(out.config, effective_config(options));
    SLUICE_ASSIGN_OR_RETURN(out.data_dir, DataDir::open(out.config.storage.data_dir));
    SLUICE_ASSIGN_OR_RETURN(out.indexes, retrieval::IndexManager::open(
                                             out.data_dir->path() / "indexes", server_index_deps()));
    SLUICE_ASSIGN_OR_RETURN(out.index, out.indexes->get(name));
    return out;
}

}  // namespace sluice::app
