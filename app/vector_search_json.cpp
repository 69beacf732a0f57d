#include "app/vector_search_json.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <set>

#include "app/request_members.h"

namespace sluice::app {
namespace {

using nlohmann::json;
using retrieval::Filter;
using retrieval::MetaValue;

// The members index creation takes: the settings, the route's comment, and Databricks' direct
// access shape. endpoint_name is taken without effect: an index here belongs to no endpoint.
const std::set<std::string> kCreateMembers = {"name",
                                              "language",
                                              "chunking",
                                              "chunk_max_tokens",
                                              "chunk_overlap_tokens",
                                              "embedder",
                                              "embedder_endpoint",
                                              "embedder_model",
                                              "embedding_dimension",
                                              "index_factory",
                                              "metric",
                                              "comment",
                                              "primary_key",
                                              "index_type",
                                              "direct_access_index_spec",
                                              "fusion",
                                              "vector_weight"};
const std::set<std::string> kCreateIgnored = {"endpoint_name"};

// The members a query takes. debug_level, which Databricks' clients may send, asks for
// diagnostics this server does not give; it changes no result, so it is taken without effect.
const std::set<std::string> kQueryMembers = {"query_text", "query_vector", "num_results",
                                             "query_type", "filters_json", "filters",
                                             "columns",    "fusion",       "vector_weight"};
const std::set<std::string> kQueryIgnored = {"debug_level"};

Result<MetaValue> meta_value(const std::string& field, const json& value) {
    if (value.is_string()) {
        return MetaValue(value.get<std::string>());
    }
    if (value.is_boolean()) {
        return MetaValue(value.get<bool>());
    }
    if (value.is_number()) {
        return metadata_number(value);
    }
    return invalid_argument("field '" + field + "': expected a string, number or boolean");
}

// The body's vector_weight: absent or a number from 0 to 1.
Result<std::optional<double>> fusion_weight(const json& body) {
    auto given = body.find("vector_weight");
    if (given == body.end()) {
        return std::optional<double>();
    }
    if (!given->is_number() || !(given->get<double>() >= 0.0 && given->get<double>() <= 1.0)) {
        return invalid_argument("vector_weight: expected a number from 0 to 1, found " +
                                given->dump());
    }
    return std::optional<double>(given->get<double>());
}

// A vector's components as floats. A JSON number beyond a float's range became infinity (a
// double converted to float out of range), which cosine normalisation turned into NaN: such a
// row ranked wrongly and scored null. `what` names the vector in errors.
Result<std::vector<float>> float_vector(const json& value, const std::string& what) {
    if (!value.is_array()) {
        return invalid_argument(what + ": expected an array of numbers");
    }
    std::vector<float> out;
    out.reserve(value.size());
    for (std::size_t i = 0; i < value.size(); ++i) {
        const json& x = value[i];
        if (!x.is_number()) {
            return invalid_argument(what + ": expected an array of numbers, found " +
                                    std::string(x.type_name()) + " at " + std::to_string(i));
        }
        const double d = x.get<double>();
        if (!(std::fabs(d) <= std::numeric_limits<float>::max())) {
            return invalid_argument(what + "[" + std::to_string(i) + "] is " + x.dump() +
                                    ", beyond a float's range (about 3.4e38)");
        }
        out.push_back(static_cast<float>(d));
    }
    return out;
}

Result<std::vector<std::string>> string_list(const json& value, const std::string& what) {
    if (!value.is_array()) {
        return invalid_argument(what + ": expected an array of strings");
    }
    std::vector<std::string> out;
    for (const auto& item : value) {
        if (!item.is_string()) {
            return invalid_argument(what + ": expected an array of strings");
        }
        out.push_back(item.get<std::string>());
    }
    return out;
}

Result<Filter> field_filter(const std::string& key, const json& value) {
    auto space = key.rfind(' ');
    std::string field = space == std::string::npos ? key : key.substr(0, space);
    std::string op = space == std::string::npos ? "" : key.substr(space + 1);
    // Field names a filter can spell hold no space ("First Name" is not filterable): one left
    // in the field ("year  >", "lang ") would match nothing, silently.
    if (field.empty() || field.find(' ') != std::string::npos ||
        (space != std::string::npos && op.empty())) {
        return invalid_argument("filter '" + key +
                                "': expected a field name, or a field name and an operator "
                                "separated by one space ('year >=')");
    }
    // "id" names the rows' primary key, which chunks carry as doc_key (no metadata field may
    // take the name, validate_metadata), so a filter on it used to match nothing. Keys are text:
    // an integer id is the text it was written as, and a range compares text.
    const bool by_key = field == "id";
    auto read = [&](const json& item) -> Result<MetaValue> {
        if (!by_key) {
            return meta_value(field, item);
        }
        if (item.is_string()) {
            return MetaValue(item.get<std::string>());
        }
        if (item.is_number_integer() && op != "<" && op != "<=" && op != ">" && op != ">=") {
            return MetaValue(item.dump());
        }
        return invalid_argument("filter '" + key + "': a row's id is text, found " + item.dump() +
                                "; expected a string (or an integer, outside a range)");
    };
    if (by_key) {
        field = "doc_key";
    }
    const bool negated = op == "NOT" || op == "!=";
    if ((op.empty() || negated) && value.is_array()) {
        std::vector<MetaValue> values;
        for (const auto& item : value) {
            SLUICE_ASSIGN_OR_RETURN(auto v, read(item));
            values.push_back(std::move(v));
        }
        Filter in = Filter::in(field, std::move(values));
        return negated ? Filter::negate(std::move(in)) : std::move(in);
    }
    SLUICE_ASSIGN_OR_RETURN(auto v, read(value));
    if (op.empty()) {
        return Filter::equals(field, std::move(v));
    }
    if (negated) {
        return Filter::negate(Filter::equals(field, std::move(v)));
    }
    const bool range = op == "<" || op == "<=" || op == ">" || op == ">=";
    if (range && !retrieval::is_ordered_kind(v)) {
        // Refused, not left to match nothing: no stored value could ever pass this bound.
        return invalid_argument("filter '" + key +
                                "': a boolean has no order; expected the field alone (equals), a "
                                "list (in) or NOT");
    }
    if (op == "<" || op == "<=") {
        return Filter::range(field, std::nullopt, true, std::move(v), op == "<=");
    }
    if (op == ">" || op == ">=") {
        return Filter::range(field, std::move(v), op == ">=", std::nullopt, true);
    }
    if (op == "PREFIX") {
        if (!value.is_string()) {
            return invalid_argument("filter '" + key + "': expected a string");
        }
        return Filter::prefix(field, value.get<std::string>());
    }
    return invalid_argument("filter '" + key + "': unknown operator '" + op +
                            "', expected NOT, <, <=, >, >= or PREFIX");
}

// The size setting `name` of `object` when given: a JSON integer, at least 0 (the range is
// validate()'s); errors name it `where`. Read as a size_t, 1.5 was cut to 1, -1 wrapped to
// 2^64 - 1 and 1e300 became 0.
Result<std::optional<std::size_t>> size_member(const json& object, const std::string& name,
                                               const std::string& where) {
    auto given = object.find(name);
    if (given == object.end()) {
        return std::optional<std::size_t>();
    }
    if (!given->is_number_integer() ||
        (!given->is_number_unsigned() && given->get<std::int64_t>() < 0)) {
        return invalid_argument(where + ": expected a non-negative integer, found " +
                                given->dump());
    }
    return std::optional<std::size_t>(given->get<std::size_t>());
}

// Databricks' members of index creation, checked so that what this server cannot honour is
// refused, not dropped: rows are keyed by "id" and written through this API or a source, and of
// the spec only the vector column's width configures anything.
Status check_databricks_members(const json& body) {
    if (auto key = body.find("primary_key"); key != body.end() && *key != "id") {
        return invalid_argument("primary_key " + key->dump() +
                                ": rows are keyed by \"id\", the only primary key");
    }
    if (auto type = body.find("index_type"); type != body.end() && *type != "DIRECT_ACCESS") {
        return invalid_argument("index_type " + type->dump() +
                                ": expected \"DIRECT_ACCESS\" (a source keeps an index in sync, "
                                "docs/connectors.md)");
    }
    auto spec = body.find("direct_access_index_spec");
    if (spec == body.end()) {
        return Status::ok_status();
    }
    const std::string where = "direct_access_index_spec";
    if (!spec->is_object()) {
        return invalid_argument(where + ": expected an object");
    }
    // schema_json describes a Delta table's columns; rows here carry any metadata.
    SLUICE_RETURN_IF_ERROR(
        check_keys(*spec, {"embedding_vector_columns"}, {"schema_json"}).with_context(where));
    auto columns = spec->find("embedding_vector_columns");
    if (columns == spec->end()) {
        return Status::ok_status();
    }
    if (!columns->is_array() || columns->size() > 1) {
        return invalid_argument(where +
                                ".embedding_vector_columns: expected an array of one column (a "
                                "row has one vector)");
    }
    for (const auto& column : *columns) {
        if (!column.is_object()) {
            return invalid_argument(where + ".embedding_vector_columns[0]: expected an object");
        }
        SLUICE_RETURN_IF_ERROR(check_keys(column, {"name", "embedding_dimension"}, {})
                                   .with_context(where + ".embedding_vector_columns[0]"));
    }
    return Status::ok_status();
}

}  // namespace

Result<std::vector<retrieval::Document>> upsert_rows_from_json(const json& body) {
    SLUICE_RETURN_IF_ERROR(check_keys(body, {"inputs_json", "inputs"}, {}));
    const auto text = body.find("inputs_json");
    const auto rows = body.find("inputs");
    if (text != body.end() && rows != body.end()) {
        return invalid_argument("give inputs_json or inputs, not both");
    }
    if (rows != body.end()) {
        return documents_from_json(*rows);
    }
    if (text == body.end()) {
        return invalid_argument(
            "inputs_json (the rows as a JSON string) or inputs (an array of rows) is required");
    }
    // A non-string inputs_json used to be passed over for inputs, which was absent.
    if (!text->is_string()) {
        return invalid_argument(
            "inputs_json: expected a string holding a JSON array of rows, found " +
            std::string(text->type_name()));
    }
    const json parsed = json::parse(text->get<std::string>(), nullptr, false);
    if (parsed.is_discarded()) {
        return invalid_argument("inputs_json is not valid JSON");
    }
    return documents_from_json(parsed);
}

MetaValue metadata_number(const json& value) {
    // JSON integers reach 2^64 - 1; past int64 only a float holds them.
    if (value.is_number_unsigned() &&
        value.get<std::uint64_t>() > std::uint64_t{std::numeric_limits<std::int64_t>::max()}) {
        return value.get<double>();
    }
    if (value.is_number_integer()) {
        return value.get<std::int64_t>();
    }
    return value.get<double>();
}

namespace {

// `filter` at `depth` and/or/not combinators below the top. The walk is recursive, as are the
// filter's matching and planning (Filter::matches, FilterPostings): the limit bounds their stack.
Result<Filter> filter_at_depth(const json& filter, std::size_t depth) {
    if (!filter.is_object()) {
        return invalid_argument("filters: expected an object");
    }
    if (depth > kMaxFilterDepth) {
        return invalid_argument("filters: and/or/not nested more than " +
                                std::to_string(kMaxFilterDepth) + " deep");
    }
    std::vector<Filter> all;
    for (const auto& [key, value] : filter.items()) {
        if (key == "and" || key == "or") {
            if (!value.is_array()) {
                return invalid_argument("filters '" + key + "': expected an array");
            }
            std::vector<Filter> children;
            for (const auto& child : value) {
                SLUICE_ASSIGN_OR_RETURN(auto f, filter_at_depth(child, depth + 1));
                children.push_back(std::move(f));
            }
            all.push_back(key == "and" ? Filter::all_of(std::move(children))
                                       : Filter::any_of(std::move(children)));
        } else if (key == "not") {
            SLUICE_ASSIGN_OR_RETURN(auto f, filter_at_depth(value, depth + 1));
            all.push_back(Filter::negate(std::move(f)));
        } else {
            SLUICE_ASSIGN_OR_RETURN(auto f, field_filter(key, value));
            all.push_back(std::move(f));
        }
    }
    if (all.empty()) {
        return Filter();
    }
    if (all.size() == 1) {
        return std::move(all.front());
    }
    return Filter::all_of(std::move(all));
}

}  // namespace

Result<Filter> filter_from_json(const json& filter) { return filter_at_depth(filter, 0); }

Result<retrieval::IndexSettings> settings_from_json(const json& body) {
    if (!body.is_object()) {
        return invalid_argument("expected a JSON object");
    }
    SLUICE_RETURN_IF_ERROR(check_keys(body, kCreateMembers, kCreateIgnored));
    SLUICE_RETURN_IF_ERROR(check_databricks_members(body));
    if (auto comment = body.find("comment"); comment != body.end() && !comment->is_string()) {
        return invalid_argument("comment: expected a string, found " +
                                std::string(comment->type_name()));
    }
    retrieval::IndexSettings s;
    try {
        s.name = body.at("name").get<std::string>();
        s.language = body.value("language", s.language);
        s.chunking = body.value("chunking", s.chunking);
        SLUICE_ASSIGN_OR_RETURN(auto max_tokens,
                                size_member(body, "chunk_max_tokens", "chunk_max_tokens"));
        s.chunk.max_tokens = max_tokens.value_or(s.chunk.max_tokens);
        SLUICE_ASSIGN_OR_RETURN(auto overlap_tokens,
                                size_member(body, "chunk_overlap_tokens", "chunk_overlap_tokens"));
        s.chunk.overlap_tokens = overlap_tokens.value_or(s.chunk.overlap_tokens);
        s.embedder = body.value("embedder", s.embedder);
        s.embedder_endpoint = body.value("embedder_endpoint", s.embedder_endpoint);
        s.embedder_model = body.value("embedder_model", s.embedder_model);
        SLUICE_ASSIGN_OR_RETURN(auto dimension,
                                size_member(body, "embedding_dimension", "embedding_dimension"));
        s.dimension = dimension.value_or(s.dimension);
        bool dimension_given = dimension.has_value();
        // Databricks' direct access spec names the dimension on its vector column.
        if (body.contains("direct_access_index_spec")) {
            const auto& columns =
                body["direct_access_index_spec"].value("embedding_vector_columns", json::array());
            if (!columns.empty()) {
                SLUICE_ASSIGN_OR_RETURN(
                    auto column_dimension,
                    size_member(columns[0], "embedding_dimension",
                                "direct_access_index_spec.embedding_vector_columns[0]."
                                "embedding_dimension"));
                s.dimension = column_dimension.value_or(s.dimension);
                dimension_given = dimension_given || column_dimension.has_value();
                if (!body.contains("embedder")) {
                    s.embedder = "none";
                }
            }
        }
        // The model knows its own width: without one given, the index takes its d_model.
        if (s.embedder == "model" && !dimension_given) {
            s.dimension = retrieval::kEmbedderDimension;
        }
        s.factory = body.value("index_factory", s.factory);
        if (body.contains("fusion")) {
            SLUICE_ASSIGN_OR_RETURN(
                s.fusion, retrieval::parse_fusion_method(body["fusion"].get<std::string>()));
        }
        SLUICE_ASSIGN_OR_RETURN(s.vector_weight, fusion_weight(body));
        std::string metric = body.value("metric", std::string(retrieval::metric_name(s.metric)));
        SLUICE_ASSIGN_OR_RETURN(s.metric, retrieval::parse_metric(metric));
    } catch (const json::exception& e) {
        return invalid_argument(std::string("index settings: ") + e.what());
    }
    SLUICE_RETURN_IF_ERROR(retrieval::validate(s));
    return s;
}

json describe_index(const retrieval::Index& index) {
    const auto& s = index.settings();
    auto stats = index.stats();
    json out{{"name", s.name},
             {"primary_key", "id"},
             {"index_type", "DIRECT_ACCESS"},
             {"language", s.language},
             {"chunking", s.chunking},
             {"chunk_max_tokens", s.chunk.max_tokens},
             {"chunk_overlap_tokens", s.chunk.overlap_tokens},
             {"embedder", s.embedder},
             {"embedding_dimension", s.dimension},
             {"index_factory", s.factory},
             {"metric", std::string(retrieval::metric_name(s.metric))},
             {"status",
              {{"ready", true},
               {"indexed_row_count", stats.documents},
               {"chunk_count", stats.chunks},
               {"vector_count", stats.vectors},
               {"sequence", stats.sequence},
               {"snapshot_sequence", stats.snapshot_sequence}}}};
    // What a hybrid query that names no fusion uses, in the shape creation takes.
    const retrieval::FusionChoice fusion = retrieval::hybrid_fusion(s);
    out["fusion"] = std::string(retrieval::fusion_method_name(fusion.method));
    if (fusion.method == retrieval::FusionMethod::kWeighted) {
        out["vector_weight"] = fusion.vector_weight;
    }
    return out;
}

Result<std::vector<retrieval::Document>> documents_from_json(const json& rows) {
    if (!rows.is_array()) {
        return invalid_argument("rows: expected an array of objects");
    }
    std::vector<retrieval::Document> out;
    for (std::size_t i = 0; i < rows.size(); ++i) {
        const json& row = rows[i];
        std::string where = "row " + std::to_string(i);
        if (!row.is_object()) {
            return invalid_argument(where + ": expected an object");
        }
        retrieval::Document doc;
        for (const auto& [name, value] : row.items()) {
            if (name == "id") {
                if (value.is_string()) {
                    doc.key = value.get<std::string>();
                } else if (value.is_number_integer()) {
                    // As written: read as a long long, 2^64 - 1 became "-1", another row's key.
                    doc.key = value.dump();
                } else {
                    return invalid_argument(where + ": id must be a string or an integer");
                }
            } else if (name == "text" || name == "title" || name == "uri") {
                if (!value.is_string()) {
                    return invalid_argument(where + ": " + name + " must be a string");
                }
                (name == "text" ? doc.text : name == "title" ? doc.title : doc.uri) =
                    value.get<std::string>();
            } else if (name == "vector") {
                SLUICE_ASSIGN_OR_RETURN(doc.vector, float_vector(value, where + ": vector"));
            } else if (name == "acl") {
                if (!value.is_object()) {
                    return invalid_argument(where + ": acl must be an object");
                }
                if (value.contains("principals")) {
                    SLUICE_ASSIGN_OR_RETURN(doc.acl.principals,
                                            string_list(value["principals"], where + " acl"));
                }
                if (value.contains("groups")) {
                    SLUICE_ASSIGN_OR_RETURN(doc.acl.groups,
                                            string_list(value["groups"], where + " acl"));
                }
            } else if (!value.is_null()) {
                SLUICE_ASSIGN_OR_RETURN(auto v, meta_value(name, value));
                doc.metadata[name] = std::move(v);
            }
        }
        if (doc.key.empty()) {
            return invalid_argument(where + ": missing id");
        }
        out.push_back(std::move(doc));
    }
    return out;
}

Result<std::vector<std::string>> primary_keys_from_json(const json& body) {
    SLUICE_RETURN_IF_ERROR(check_keys(body, {"primary_keys"}, {}));
    auto given = body.find("primary_keys");
    if (given == body.end() || given->is_null()) {
        return invalid_argument("primary_keys is required: the keys of the rows to delete");
    }
    if (!given->is_array()) {
        return invalid_argument("primary_keys: expected an array of strings or integers, found " +
                                std::string(given->type_name()));
    }
    std::vector<std::string> keys;
    for (const auto& key : *given) {
        if (key.is_string()) {
            keys.push_back(key.get<std::string>());
        } else if (key.is_number_integer()) {
            keys.push_back(key.dump());  // as upsert keys an integer id
        } else {
            return invalid_argument("primary_keys: expected strings or integers, found " +
                                    key.dump());
        }
    }
    return keys;
}

Result<retrieval::Query> query_from_json(const json& body) {
    if (!body.is_object()) {
        return invalid_argument("expected a JSON object");
    }
    SLUICE_RETURN_IF_ERROR(check_keys(body, kQueryMembers, kQueryIgnored));
    retrieval::Query query;
    try {
        query.text = body.value("query_text", std::string());
        if (auto vector = body.find("query_vector"); vector != body.end()) {
            SLUICE_ASSIGN_OR_RETURN(query.vector, float_vector(*vector, "query_vector"));
        }
        if (auto k = body.find("num_results"); k != body.end()) {
            // Integers only: -1 read as a size wrapped to 2^64 - 1, and 2.5 was cut to 2.
            if (!k->is_number_integer() || k->get<std::int64_t>() < 1) {
                return invalid_argument("num_results: expected a positive integer, found " +
                                        k->dump());
            }
            query.k = static_cast<std::size_t>(k->get<std::int64_t>());
        }
        std::string type = body.value("query_type", std::string("HYBRID"));
        SLUICE_ASSIGN_OR_RETURN(query.mode, retrieval::parse_query_mode(type));
        // Without them the index's own fusion applies (describe shows it); a weight alone
        // asks for weighted fusion.
        if (body.contains("fusion")) {
            SLUICE_ASSIGN_OR_RETURN(
                query.fusion, retrieval::parse_fusion_method(body["fusion"].get<std::string>()));
        }
        SLUICE_ASSIGN_OR_RETURN(query.vector_weight, fusion_weight(body));
        // Reciprocal rank fusion has no weights: a weight with it would be dropped silently.
        if (query.vector_weight && query.fusion == retrieval::FusionMethod::kRrf) {
            return invalid_argument(
                "vector_weight applies to weighted fusion only: give \"fusion\": \"weighted\"");
        }
        // null is no filter: Databricks' clients may send "filters_json": null for none.
        // Read in place: copying a JSON value recurses once per level, so a copy of a filter
        // nested 20,000 deep overflowed the stack before its depth was checked.
        auto member = [&body](const char* name) -> const json* {
            auto found = body.find(name);
            return found == body.end() || found->is_null() ? nullptr : &*found;
        };
        const json* filters_json = member("filters_json");
        const json* filters = member("filters");
        if (filters_json != nullptr && filters != nullptr) {
            return invalid_argument("give filters or filters_json, not both");
        }
        json parsed;
        if (filters_json != nullptr) {
            parsed = json::parse(filters_json->get<std::string>(), nullptr, false);
            if (parsed.is_discarded()) {
                return invalid_argument("filters_json is not valid JSON");
            }
            filters = parsed.is_null() ? nullptr : &parsed;
        }
        if (filters != nullptr) {
            SLUICE_ASSIGN_OR_RETURN(query.filter, filter_from_json(*filters));
        }
    } catch (const json::exception& e) {
        return invalid_argument(std::string("query: ") + e.what());
    }
    return query;
}

std::vector<std::string> default_columns() { return {"id", "title", "uri", "text"}; }

Result<std::vector<std::string>> columns_from_json(const json& body) {
    auto given = body.find("columns");
    if (given == body.end() || given->is_null()) {
        return default_columns();
    }
    const bool strings =
        given->is_array() &&
        std::all_of(given->begin(), given->end(), [](const json& c) { return c.is_string(); });
    if (!strings) {
        return invalid_argument("columns: expected an array of column names");
    }
    return given->get<std::vector<std::string>>();
}

json results_to_json(const std::vector<retrieval::Hit>& hits,
                     const std::vector<std::string>& columns) {
    json names = json::array();
    for (const auto& column : columns) {
        names.push_back({{"name", column}});
    }
    // "score" is the hit's score wherever the columns name it, and the last column otherwise.
    const bool score_named = std::find(columns.begin(), columns.end(), "score") != columns.end();
    if (!score_named) {
        names.push_back({{"name", "score"}});
    }
    json rows = json::array();
    for (const auto& hit : hits) {
        const auto& chunk = hit.chunk;
        json row = json::array();
        for (const auto& column : columns) {
            if (column == "score") {
                row.push_back(hit.score);
            } else if (column == "id") {
                row.push_back(chunk.doc_key);
            } else if (column == "chunk_id") {
                row.push_back(chunk.id);
            } else if (column == "text") {
                row.push_back(chunk.text);
            } else if (column == "title") {
                row.push_back(chunk.title);
            } else if (column == "uri") {
                row.push_back(chunk.uri);
            } else if (column == "section_path") {
                row.push_back(chunk.section_path);
            } else if (column == "char_begin") {
                row.push_back(chunk.char_begin);
            } else if (column == "char_end") {
                row.push_back(chunk.char_end);
            } else if (auto it = chunk.metadata.find(column); it != chunk.metadata.end()) {
                // As stored: an integer is a JSON number without a fraction (2020), a float
                // keeps one (2020.0), a boolean is true or false.
                row.push_back(
                    std::visit([](const auto& value) { return json(value); }, it->second));
            } else {
                row.push_back(nullptr);
            }
        }
        if (!score_named) {
            row.push_back(hit.score);
        }
        rows.push_back(std::move(row));
    }
    return json{{"manifest", {{"column_count", names.size()}, {"columns", names}}},
                {"result", {{"row_count", rows.size()}, {"data_array", rows}}}};
}

}  // namespace sluice::app
