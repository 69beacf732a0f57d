#include "retrieval/types.h"

#include <algorithm>

namespace sluice::retrieval {

bool Acl::allows(const Reader& reader) const {
    if (!reader.principal.empty() &&
        std::find(principals.begin(), principals.end(), reader.principal) != principals.end()) {
        return true;
    }
    for (const auto& group : reader.groups) {
        if (!group.empty() && std::find(groups.begin(), groups.end(), group) != groups.end()) {
            return true;
        }
    }
    return false;
}

}  // namespace sluice::retrieval
