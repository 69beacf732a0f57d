#pragma once
// Keeps the vector indexes of a data directory and the catalog in step: every index retrieval
// stores is a catalog securable of type vector_index (names: agents/index_access.h).
//
//  - At start-up, register_stored_indexes() registers every stored index the catalog does not
//    know yet (indexes made before indexes were catalog objects, and those made offline by
//    `sluice source add --index` or the sync engine), owned by the metastore admin and audited.
//  - create_index() and drop_index() are what the REST API does for a caller: creating needs
//    USE_CATALOG, USE_SCHEMA and CREATE_TABLE on the schema (Databricks treats a vector index as
//    table-like), dropping needs MANAGE on the index (its owner holds it, and metastore admins).
//
// Thread safety: free functions over thread-safe services.

#include <string>

#include "agents/index_access.h"
#include "common/result.h"
#include "governance/governance.h"
#include "retrieval/index_manager.h"
#include "retrieval/index_settings.h"

namespace sluice::app {

// Registers the stored indexes the catalog lacks. The owner is the bootstrap admin ("admin"),
// or the first metastore admin when that one is gone; the catalog `vector_search` and schema
// `vector_search.default` of plain-named indexes, and the containers of three-level names, are
// created for it when missing. An index whose stored name has no catalog name is logged and
// left out (it cannot be opened through the API). Errors: the catalog's and the audit log's.
Status register_stored_indexes(governance::Governance& gov,
                               const retrieval::IndexManager& indexes);

// Creates the index and its securable, owned by the caller. A plain name is created in
// `vector_search.default`, made on demand when the caller is a metastore admin. Errors:
// kPermissionDenied (audited) without CREATE_TABLE; kNotFound when the schema does not exist;
// kAlreadyExists when the catalog or retrieval has the name; kInvalidArgument for settings.
Result<agents::IndexRef> create_index(governance::Governance& gov,
                                      retrieval::IndexManager& indexes,
                                      const governance::RequestContext& caller,
                                      const retrieval::IndexSettings& settings,
                                      const std::string& comment);

// Drops the index's files and its securable with its grants. kPermissionDenied (audited)
// without MANAGE; kNotFound.
Status drop_index(governance::Governance& gov, retrieval::IndexManager& indexes,
                  const governance::RequestContext& caller, const std::string& name);

// What drop_index does once MANAGE is established: the files, then the securable (audited).
Status remove_index(governance::Governance& gov, retrieval::IndexManager& indexes,
                    const governance::RequestContext& caller, agents::IndexRef index);

}  // namespace sluice::app
