#include "agents/index_access.h"

namespace sluice::agents {

using governance::SecurableType;

Result<std::string> index_securable_name(const std::string& stored_name) {
    if (governance::split_full_name(SecurableType::kVectorIndex, stored_name).ok()) {
        return stored_name;
    }
    if (governance::validate_identifier(stored_name, "index name").ok()) {
        return std::string(kPlainIndexCatalog) + "." + std::string(kPlainIndexSchema) + "." +
               stored_name;
    }
    return invalid_argument("index '" + stored_name +
                            "' has no catalog name: expected catalog.schema.index or a plain "
                            "name of [A-Za-z0-9_-]");
}

Result<IndexRef> find_index(const retrieval::IndexManager& indexes, const std::string& name) {
    if (auto stored = indexes.get(name); stored.ok()) {
        SLUICE_ASSIGN_OR_RETURN(std::string securable, index_securable_name(name));
        return IndexRef{std::move(securable), std::move(*stored)};
    }
    // A plain-named index reached by its catalog name.
    const std::string prefix =
        std::string(kPlainIndexCatalog) + "." + std::string(kPlainIndexSchema) + ".";
    if (name.size() > prefix.size() && name.compare(0, prefix.size(), prefix) == 0) {
        if (auto stored = indexes.get(name.substr(prefix.size())); stored.ok()) {
            return IndexRef{name, std::move(*stored)};
        }
    }
    return not_found("vector index '" + name + "' does not exist");
}

Result<std::string> securable_for(const retrieval::IndexManager& indexes,
                                  const std::string& name) {
    if (auto found = find_index(indexes, name); found.ok()) {
        return std::move(found->securable);
    }
    return index_securable_name(name);
}

Result<IndexRef> open_index(governance::Authorizer& authorizer,
                            const governance::RequestContext& caller,
                            governance::Privilege privilege,
                            const retrieval::IndexManager& indexes, const std::string& name) {
    SLUICE_ASSIGN_OR_RETURN(std::string securable, securable_for(indexes, name));
    SLUICE_RETURN_IF_ERROR(
        authorizer.require(caller, privilege, SecurableType::kVectorIndex, securable));
    // The catalog knows it; retrieval may not (a catalog entry made without an index behind it,
    // or one dropped a moment ago).
    SLUICE_ASSIGN_OR_RETURN(IndexRef found, find_index(indexes, name));
    return found;
}

}  // namespace sluice::agents
