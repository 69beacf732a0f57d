#pragma once
// JSON shapes of the vector search API, following Databricks Vector Search where they fit:
// index settings, rows to upsert, filters and query results. Malformed input is kInvalidArgument
// naming the field.
//
// Rows: "id" (string or integer) is the primary key; "text", "title", "uri" are the document;
// "vector" (array of numbers) is an optional caller embedding; "acl" {"principals", "groups"}
// says who may read it; every other string, number or boolean becomes filterable metadata.
// Integers stay integers and come back so in query results (2020, not 2020.0); booleans stay
// booleans (true, not 1.0).
//
// Filters: {"field": value} equals, {"field": [v, ...]} in, {"field NOT": v}, {"field <": v}
// (also <=, >, >=), {"field PREFIX": "text"}; keys of one object are ANDed; {"and": [...]},
// {"or": [...]} and {"not": {...}} nest. A boolean equals only a boolean (retrieval/filter.h);
// a range with a boolean bound is refused (booleans have no order), as is a PREFIX that is not
// text. The field "id" is the row's key (doc_key), which is text: an integer matches the key it
// was written as, and a range takes a string bound only.
//
// Thread safety: pure functions.

#include <nlohmann/json.hpp>

#include "common/result.h"
#include "retrieval/index.h"

namespace sluice::app {

// Index creation's body: name, language, chunking, chunk_max_tokens, chunk_overlap_tokens,
// embedder, embedder_endpoint, embedder_model, embedding_dimension, index_factory, metric and
// comment (a string; the route's), and Databricks' direct access shape: primary_key (only
// "id"), index_type (only DIRECT_ACCESS), direct_access_index_spec {embedding_vector_columns:
// [{name, embedding_dimension}], schema_json (taken without effect)}, endpoint_name (taken
// without effect). Any other member is refused, naming it and listing the accepted ones.
Result<retrieval::IndexSettings> settings_from_json(const nlohmann::json& body);
nlohmann::json describe_index(const retrieval::Index& index);

Result<std::vector<retrieval::Document>> documents_from_json(const nlohmann::json& rows);
// An upsert's body: {"inputs_json": "<a JSON array of rows>"} (Databricks') or {"inputs":
// [rows]}, exactly one of them. Any other member is refused, naming it and listing these two.
Result<std::vector<retrieval::Document>> upsert_rows_from_json(const nlohmann::json& body);
// A JSON number as a metadata value: an integer that int64 holds stays an integer, any other
// number is a float. Precondition: value.is_number().
retrieval::MetaValue metadata_number(const nlohmann::json& value);
// The and/or/not combinators one filter may nest: deeper is refused (kInvalidArgument), since
// parsing, matching and planning a filter each recurse once per level.
inline constexpr std::size_t kMaxFilterDepth = 100;
Result<retrieval::Filter> filter_from_json(const nlohmann::json& filter);

// A delete's body: {"primary_keys": [keys]}, each a string or an integer. primary_keys is
// required (a body without it deleted nothing and answered 200, so a misspelt member looked
// like success); an empty array deletes nothing. Any other member is refused.
Result<std::vector<std::string>> primary_keys_from_json(const nlohmann::json& body);

// A query request: query_text, query_vector, num_results, filters_json (string) or filters
// (object; null in either is no filter), query_type ANN | HYBRID | LEXICAL, fusion rrf |
// weighted, vector_weight (weighted fusion only), and columns (columns_from_json). Any other
// member is refused, naming it and listing these; debug_level is taken without effect.
Result<retrieval::Query> query_from_json(const nlohmann::json& body);
// The query's "columns": absent or null is default_columns().
Result<std::vector<std::string>> columns_from_json(const nlohmann::json& body);

// {"manifest": {"column_count", "columns": [{"name"}]}, "result": {"row_count", "data_array"}};
// the hit's score is the column named "score" where `columns` name one (metadata cannot be named
// so), else an added last column.
nlohmann::json results_to_json(const std::vector<retrieval::Hit>& hits,
                               const std::vector<std::string>& columns);
std::vector<std::string> default_columns();

}  // namespace sluice::app
