#pragma once
// What the commands that read an index without a server (`sluice search`, `sluice ask`) open:
// the effective configuration, its data directory and one index in it, with the same embedders
// and tokenizer the server lends its indexes (index_deps.h).
//
// Thread safety: a value owned by one command.

#include <memory>
#include <string>

#include "app/config.h"
#include "app/config_commands.h"
#include "app/data_dir.h"
#include "common/result.h"
#include "retrieval/index_manager.h"

namespace sluice::app {

struct LocalIndex {
    Config config;
    std::unique_ptr<DataDir> data_dir;
    std::unique_ptr<retrieval::IndexManager> indexes;
    std::shared_ptr<retrieval::Index> index;
};

// Errors name what could not be opened: the config, the data directory, the indexes, or the
// index (kNotFound).
Result<LocalIndex> open_local_index(const ConfigOptions& options, const std::string& name);

}  // namespace sluice::app
