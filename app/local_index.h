#pragma once
// What the commands that read an index without a server (`sluice search`, `sluice ask`) open:
// the effective configuration, its data directory, its catalog, and one index in it, with the
// same embedders and tokenizer the server lends its indexes (index_deps.h). The configured model
// loads only when a "model" index embeds, or when the command asks for it (offline_model.h).
//
// These commands read as a catalog principal (`--principal`, by default the bootstrap admin
// "admin"): SELECT on the index is required as it and audited (request id "cli"), exactly as a
// request of that principal would be, and chunks are read as it and every group it is inside,
// plus the groups the operator names with `--group` (who runs the command holds the data
// directory's files, as `sluice token create` does).
//
// Thread safety: a value owned by one command.

#include <memory>
#include <string>
#include <vector>

#include "app/config.h"
#include "app/config_commands.h"
#include "app/data_dir.h"
#include "app/offline_model.h"
#include "common/result.h"
#include "governance/governance.h"
#include "retrieval/index_manager.h"

namespace sluice::app {

struct LocalIndex {
    Config config;
    std::unique_ptr<DataDir> data_dir;
    std::unique_ptr<governance::Governance> gov;
    std::shared_ptr<OfflineModel> model;  // the config's /model, loaded on first use
    std::unique_ptr<retrieval::IndexManager> indexes;
    std::shared_ptr<retrieval::Index> index;
    governance::RequestContext caller;
    retrieval::Reader reader;
};

// The principal offline commands act as when none is named.
inline constexpr std::string_view kCliDefaultPrincipal = "admin";

// Errors name what could not be opened: the config, the data directory, the catalog, the
// principal (kNotFound), the index (kNotFound); kPermissionDenied when the principal lacks
// SELECT on the index.
Result<LocalIndex> open_local_index(const ConfigOptions& options, const std::string& name,
                                    const std::string& principal,
                                    const std::vector<std::string>& extra_groups);

// The catalog principal a command acts as, and its request context ("cli").
Result<governance::RequestContext> cli_caller(governance::Governance& gov,
                                              const std::string& principal);

}  // namespace sluice::app
