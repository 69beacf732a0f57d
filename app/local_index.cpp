#include "app/local_index.h"

#include "agents/index_access.h"
#include "app/index_catalog.h"

namespace sluice::app {

Result<governance::RequestContext> cli_caller(governance::Governance& gov,
                                              const std::string& principal) {
    const std::string name = principal.empty() ? std::string(kCliDefaultPrincipal) : principal;
    auto found = gov.store().principal(name);
    if (!found.ok()) {
        return found.status().with_context("--principal");
    }
    return governance::RequestContext{found->id, found->name, "cli", "", ""};
}

Result<LocalIndex> open_local_index(const ConfigOptions& options, const std::string& name,
                                    const std::string& principal,
                                    const std::vector<std::string>& extra_groups) {
    LocalIndex out;
    SLUICE_ASSIGN_OR_RETURN(out.config, effective_config(options));
    SLUICE_ASSIGN_OR_RETURN(out.data_dir,
                            DataDir::open(out.config.storage.data_dir, DataDirMode::kMustExist));
    SLUICE_ASSIGN_OR_RETURN(out.gov, governance::Governance::open(out.data_dir->path()));
    out.model = std::make_shared<OfflineModel>(out.config.model);
    SLUICE_ASSIGN_OR_RETURN(out.indexes,
                            retrieval::IndexManager::open(out.data_dir->path() / "indexes",
                                                          offline_index_deps(out.model)));
    // An index made offline since the server last started is registered as the server would.
    SLUICE_RETURN_IF_ERROR(register_stored_indexes(*out.gov, *out.indexes));
    SLUICE_ASSIGN_OR_RETURN(out.caller, cli_caller(*out.gov, principal));
    SLUICE_ASSIGN_OR_RETURN(auto opened,
                            agents::open_index(out.gov->authorizer(), out.caller,
                                               governance::Privilege::kSelect, *out.indexes, name));
    out.index = std::move(opened.index);
    SLUICE_ASSIGN_OR_RETURN(auto groups, out.gov->authorizer().groups_of(out.caller.principal_id));
    groups.insert(groups.end(), extra_groups.begin(), extra_groups.end());
    out.reader = retrieval::Reader{out.caller.principal, std::move(groups)};
    return out;
}

}  // namespace sluice::app
