#pragma once
// Vector indexes as catalog securables: how an index stored by retrieval is named in the catalog,
// and the one way a request reaches an index — by name, as its caller, with a privilege that
// governance checks and audits (allow and deny) before the index is touched.
//
// Names. Retrieval stores an index under the name it was created with. An index created with a
// three-level name (`catalog.schema.index`) is the catalog's vector_index of that name. One
// created with a plain name (`docs`, as every index was before indexes were catalog objects) is
// `vector_search.default.<name>` in the catalog, and answers to both names. A stored name that is
// neither (two or four dotted parts) has no catalog name and cannot be opened through here.
//
// Privileges (Unity Catalog's; docs/governance.md): reading (queries, QA, the vector_search
// tool, evaluations) needs SELECT on the index, writing documents needs MODIFY, and both need
// USE_CATALOG and USE_SCHEMA on its containers, which the authorizer adds. Document access lists
// still apply to every chunk on top of SELECT.
//
// Thread safety: pure functions over thread-safe arguments.

#include <memory>
#include <string>
#include <string_view>

#include "common/result.h"
#include "governance/authorizer.h"
#include "governance/request_context.h"
#include "governance/types.h"
#include "retrieval/index.h"
#include "retrieval/index_manager.h"

namespace sluice::agents {

// Where indexes with a plain name live in the catalog.
inline constexpr std::string_view kPlainIndexCatalog = "vector_search";
inline constexpr std::string_view kPlainIndexSchema = "default";

// The catalog name of the index stored as `stored_name`. kInvalidArgument when it has none.
Result<std::string> index_securable_name(const std::string& stored_name);

struct IndexRef {
    std::string securable;  // "catalog.schema.index"
    std::shared_ptr<retrieval::Index> index;
};

// The index called `name` (its stored name or its catalog name). kNotFound when none is.
Result<IndexRef> find_index(const retrieval::IndexManager& indexes, const std::string& name);

// The catalog name `name` stands for: the found index's, or, for a name no index has, the name
// itself when it is a catalog name (so that the authorizer can say whether it exists), else the
// plain-name mapping. kInvalidArgument for a name that maps to nothing.
Result<std::string> securable_for(const retrieval::IndexManager& indexes, const std::string& name);

// Requires `privilege` on the index called `name` as `caller` (audited: allow, deny, and a name
// the catalog does not know), then returns the index. kPermissionDenied naming the missing grant,
// kNotFound when the catalog or retrieval does not have it, kUnavailable when the decision
// could not be audited.
Result<IndexRef> open_index(governance::Authorizer& authorizer,
                            const governance::RequestContext& caller,
                            governance::Privilege privilege,
                            const retrieval::IndexManager& indexes, const std::string& name);

}  // namespace sluice::agents
