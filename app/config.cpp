#include "app/config.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <limits>
#include <sstream>

#include "app/strict_json.h"
#include "governance/types.h"
#include "inference/parallel_config.h"

extern char** environ;  // POSIX: the process environment

namespace sluice::app {
namespace {

using nlohmann::json;

enum class FieldType { kString, kInteger, kNumber, kBoolean, kStringList };

// One setting: where it lives, what it accepts, and how to read and write it on a Config.
struct Field {
    std::string section;
    std::string key;
    FieldType type;
    std::string description;
    std::vector<std::string> allowed;  // for strings: the only accepted values, if any
    double minimum = -std::numeric_limits<double>::infinity();
    double maximum = std::numeric_limits<double>::infinity();
    std::function<json(const Config&)> get;
    std::function<void(Config&, const json&)> set;  // called with a validated value
};

template <typename Section, typename T>
Field make_field(std::string section, std::string key, FieldType type, std::string description,
                 Section Config::*section_member, T Section::*member) {
    Field field;
    field.section = std::move(section);
    field.key = std::move(key);
    field.type = type;
    field.description = std::move(description);
    field.get = [section_member, member](const Config& config) {
        return json((config.*section_member).*member);
    };
    field.set = [section_member, member](Config& config, const json& value) {
        (config.*section_member).*member = value.get<T>();
    };
    return field;
}

// A field of the `parallel` section, which the engine reads from ModelSettings::parallel.
template <typename T>
Field make_parallel_field(std::string key, FieldType type, std::string description,
                          T ParallelSettings::*member) {
    Field field;
    field.section = "parallel";
    field.key = std::move(key);
    field.type = type;
    field.description = std::move(description);
    field.get = [member](const Config& config) { return json(config.model.parallel.*member); };
    field.set = [member](Config& config, const json& value) {
        config.model.parallel.*member = value.get<T>();
    };
    return field;
}

Field with_range(Field field, double minimum, double maximum) {
    field.minimum = minimum;
    field.maximum = maximum;
    return field;
}

Field with_allowed(Field field, std::vector<std::string> allowed) {
    field.allowed = std::move(allowed);
    return field;
}

const std::vector<Field>& fields() {
    static const std::vector<Field> table = [] {
        using C = Config;
        std::vector<Field> f;
        f.push_back(make_field("server", "host", FieldType::kString,
                               "Address to listen on; 0.0.0.0 for every interface", &C::server,
                               &ServerConfig::host));
        f.push_back(with_range(make_field("server", "port", FieldType::kInteger,
                                          "TCP port to listen on; 0 picks a free port",
                                          &C::server, &ServerConfig::port),
                               0, 65535));
        f.push_back(with_range(make_field("server", "threads", FieldType::kInteger,
                                          "HTTP connection threads kept running", &C::server,
                                          &ServerConfig::threads),
                               1, 1024));
        f.push_back(with_range(
            make_field("server", "max_threads", FieldType::kInteger,
                       "Most HTTP connection threads: while every thread is busy (a stream, an "
                       "idle keep-alive connection) a new connection starts one, up to this many; "
                       "past it connections wait. Below `threads` it counts as `threads`",
                       &C::server, &ServerConfig::max_threads),
            1, 65536));
        f.push_back(with_range(make_field("server", "max_body_bytes", FieldType::kInteger,
                                          "Largest request body accepted; larger ones get 413",
                                          &C::server, &ServerConfig::max_body_bytes),
                               1, 1LL << 40));
        f.push_back(with_range(make_field("server", "read_timeout_s", FieldType::kNumber,
                                          "Seconds to wait for a client's request bytes",
                                          &C::server, &ServerConfig::read_timeout_s),
                               0.001, 86400));
        f.push_back(with_range(make_field("server", "write_timeout_s", FieldType::kNumber,
                                          "Seconds to wait for a client to take response bytes",
                                          &C::server, &ServerConfig::write_timeout_s),
                               0.001, 86400));
        f.push_back(with_range(
            make_field("server", "shutdown_deadline_s", FieldType::kNumber,
                       "Seconds in-flight requests may take to finish after SIGINT/SIGTERM",
                       &C::server, &ServerConfig::shutdown_deadline_s),
            0, 3600));
        f.push_back(make_field("server", "metrics_public", FieldType::kBoolean,
                               "Serve /metrics without a bearer token (false: authenticate it)",
                               &C::server, &ServerConfig::metrics_public));
        f.push_back(with_range(
            make_field("governance", "audit_checkpoint_every", FieldType::kInteger,
                       "Audit records between Ed25519-signed checkpoints of the hash chain",
                       &C::governance, &GovernanceConfig::audit_checkpoint_every),
            1, 1e9));
        f.push_back(with_allowed(
            make_field("governance", "audit_acknowledge", FieldType::kString,
                       "queued: answer once a request's audit records are queued (committed "
                       "within milliseconds); durable: answer once they are committed",
                       &C::governance, &GovernanceConfig::audit_acknowledge),
            {"queued", "durable"}));
        f.push_back(make_field("governance", "secret_key_file", FieldType::kString,
                               "File holding the AES-256 key that seals connection secrets "
                               "(64 hex digits, mode 0600); empty: secrets.key in the data "
                               "directory, created on first start",
                               &C::governance, &GovernanceConfig::secret_key_file));
        f.push_back(with_range(make_field("sync", "max_batch", FieldType::kInteger,
                                          "Changes per poll and per atomic write batch of a "
                                          "source's sync",
                                          &C::sync, &SyncConfig::max_batch),
                               1, 100000));
        f.push_back(with_range(make_field("sync", "idle_wait_s", FieldType::kNumber,
                                          "Longest wait on a caught-up source before polling "
                                          "again (sources wake the sync earlier on a change)",
                                          &C::sync, &SyncConfig::idle_wait_s),
                               0.01, 3600));
        // Each batch in flight holds up to max_batch documents with their chunks and vectors.
        f.push_back(with_range(make_field("sync", "pipeline_depth", FieldType::kInteger,
                                          "Batches a source's sync polls and prepares (chunks, "
                                          "embeds) ahead of the one it commits; 0: one batch at "
                                          "a time",
                                          &C::sync, &SyncConfig::pipeline_depth),
                               0, 64));
        f.push_back(make_field("storage", "data_dir", FieldType::kString,
                               "Data directory (catalog, chunks, indexes); created 0700",
                               &C::storage, &StorageConfig::data_dir));
        f.push_back(with_allowed(make_field("log", "level", FieldType::kString,
                                            "Lowest level written", &C::log, &LogConfig::level),
                                 {"debug", "info", "warn", "error"}));
        f.push_back(with_allowed(make_field("log", "format", FieldType::kString,
                                            "json: one JSON object a line; text: for people",
                                            &C::log, &LogConfig::format),
                                 {"json", "text"}));
        f.push_back(make_field("log", "access_log", FieldType::kBoolean,
                               "Write one line per HTTP request", &C::log,
                               &LogConfig::access_log));
        f.push_back(make_field("model", "path", FieldType::kString,
                               "Hugging Face DBRX checkpoint folder (config.json, safetensors, "
                               "tokenizer.json); the server starts without it and /readyz says why",
                               &C::model, &ModelSettings::path));
        f.push_back(make_field("model", "name", FieldType::kString,
                               "Model id in the API and in the embedding-cache keys of "
                               "\"model\" indexes; empty: the checkpoint folder's name",
                               &C::model, &ModelSettings::name));
        f.push_back(with_allowed(make_field("model", "weights", FieldType::kString,
                                            "Weight format in memory; auto keeps the stored one; "
                                            "int8 is the cpu backend's, fp8 and int4 (the "
                                            "experts, groups of 128) the cuda backend's",
                                            &C::model, &ModelSettings::weights),
                                 {"auto", "f32", "bf16", "int8", "fp8", "int4"}));
        f.push_back(with_allowed(make_field("model", "backend", FieldType::kString,
                                            "Compute backend; auto picks cuda when a GPU is "
                                            "visible, and cuda without one falls back to cpu",
                                            &C::model, &ModelSettings::backend),
                                 {"auto", "cpu", "cuda"}));
        f.push_back(with_range(make_field("model", "threads", FieldType::kInteger,
                                          "CPU backend threads (per rank when parallel); 0: every hardware "
                                          "thread, shared out among the ranks",
                                          &C::model, &ModelSettings::threads),
                               0, 1024));
        f.push_back(with_range(make_field("model", "kv_cache_blocks", FieldType::kInteger,
                                          "KV-cache blocks of 16 positions; 0: from kv_cache_bytes",
                                          &C::model, &ModelSettings::kv_cache_blocks),
                               0, 1LL << 24));
        f.push_back(with_range(make_field("model", "kv_cache_bytes", FieldType::kInteger,
                                          "KV-cache memory when kv_cache_blocks is 0",
                                          &C::model, &ModelSettings::kv_cache_bytes),
                               1LL << 16, 1LL << 42));
        f.push_back(with_range(make_field("model", "max_batch_tokens", FieldType::kInteger,
                                          "Tokens in one forward step (decodes plus prompt chunks)",
                                          &C::model, &ModelSettings::max_batch_tokens),
                               1, 1 << 20));
        f.push_back(with_range(make_field("model", "max_running", FieldType::kInteger,
                                          "Sequences generating at once",
                                          &C::model, &ModelSettings::max_running),
                               1, 1 << 16));
        f.push_back(with_range(make_field("model", "max_queued_requests", FieldType::kInteger,
                                          "Requests waiting for admission; more get 429",
                                          &C::model, &ModelSettings::max_queued_requests),
                               1, 1 << 20));
        f.push_back(with_range(make_field("model", "request_timeout_s", FieldType::kNumber,
                                          "Seconds a generation may take; 0: no limit",
                                          &C::model, &ModelSettings::request_timeout_s),
                               0, 86400));
        f.push_back(make_field("model", "system_prompt", FieldType::kString,
                               "System prompt of conversations without one; empty: the built-in "
                               "default",
                               &C::model, &ModelSettings::system_prompt));
        f.push_back(make_field("model", "cuda_graphs", FieldType::kBoolean,
                               "cuda backend: decode steps of 1, 2, 4, 8, 16 or 32 sequences "
                               "replay a captured CUDA graph instead of launching every kernel",
                               &C::model, &ModelSettings::cuda_graphs));
        f.push_back(make_field("model", "prefix_caching", FieldType::kBoolean,
                               "Share the KV cache of common prompt prefixes between requests",
                               &C::model, &ModelSettings::prefix_caching));
        f.push_back(make_field("model", "overlap_output", FieldType::kBoolean,
                               "Release each step's text (detokenising, stop strings, events) on "
                               "a helper thread while the next forward pass runs",
                               &C::model, &ModelSettings::overlap_output));
        f.push_back(with_range(make_field("model", "host_sampling_threads", FieldType::kInteger,
                                          "Threads making a step's host-side token choices: 1 or "
                                          "2; 0: 2 on machines with 2 or more hardware threads",
                                          &C::model, &ModelSettings::host_sampling_threads),
                               0, 2));
        f.push_back(make_field("model", "securable", FieldType::kString,
                               "Catalog model (catalog.schema.name) that governs the OpenAI "
                               "endpoint: callers need EXECUTE on it and answers get its lineage; "
                               "empty: every authenticated caller may query it",
                               &C::model, &ModelSettings::securable));
        f.push_back(with_range(
            make_parallel_field("tensor", FieldType::kInteger,
                                "Ranks of the tensor plan: attention split by heads, experts "
                                "split inside, lm_head split by vocabulary; with expert above "
                                "1 too, the ranks of each expert group of the grid",
                                &ParallelSettings::tensor),
            1, 4096));
        f.push_back(with_range(
            make_parallel_field("expert", FieldType::kInteger,
                                "Ranks of the expert plan: experts distributed whole, tokens "
                                "dispatched by all-to-all (attention as in the tensor plan); "
                                "with tensor above 1 too, the expert groups of a tensor x "
                                "expert grid of that many ranks (at most 4096 in all)",
                                &ParallelSettings::expert),
            1, 4096));
        f.push_back(make_parallel_field(
            "nodes", FieldType::kStringList,
            "host:port of each node: node 0's is the bootstrap every node joins, the others' hosts "
            "are where their CPU ranks listen; empty: this node only (environment: "
            "comma-separated)",
            &ParallelSettings::nodes));
        f.push_back(with_range(
            make_parallel_field("node", FieldType::kInteger,
                                "This process's index in nodes: 0 schedules and serves the API, "
                                "every other node follows its steps on its own GPUs",
                                &ParallelSettings::node),
            0, 4095));
        f.push_back(with_range(
            make_parallel_field("join_timeout_s", FieldType::kInteger,
                                "Seconds every node has to join the group (nodes may start in "
                                "any order within it)",
                                &ParallelSettings::join_timeout_s),
            1, 86400));
        return f;
    }();
    return table;
}

std::string type_name(FieldType type) {
    switch (type) {
        case FieldType::kString: return "a string";
        case FieldType::kInteger: return "an integer";
        case FieldType::kNumber: return "a number";
        case FieldType::kBoolean: return "a boolean";
        case FieldType::kStringList: return "an array of strings";
    }
    return "a value";
}

std::string json_kind(const json& value) {
    if (value.is_string()) {
        return "string " + value.dump();
    }
    if (value.is_boolean()) {
        return std::string("boolean ") + (value.get<bool>() ? "true" : "false");
    }
    if (value.is_number_integer() || value.is_number_unsigned()) {
        return "integer " + value.dump();
    }
    if (value.is_number_float()) {
        return "number " + value.dump();
    }
    if (value.is_null()) {
        return "null";
    }
    if (value.is_array()) {
        return "an array";
    }
    return "an object";
}

std::string format_number(double value) {
    if (value == std::floor(value) && std::fabs(value) < 1e15) {
        return std::to_string(static_cast<long long>(value));
    }
    std::ostringstream out;
    out << value;
    return out.str();
}

std::string expectation(const Field& field) {
    std::string text = type_name(field.type);
    if (!field.allowed.empty()) {
        text = "one of";
        for (std::size_t i = 0; i < field.allowed.size(); ++i) {
            text += (i == 0 ? " \"" : ", \"") + field.allowed[i] + "\"";
        }
        return text;
    }
    if (std::isfinite(field.minimum) || std::isfinite(field.maximum)) {
        text += " in [" + format_number(field.minimum) + ", " + format_number(field.maximum) + "]";
    }
    return text;
}

// Checks `value` against the field; returns the message tail on failure.
std::optional<std::string> check_value(const Field& field, const json& value) {
    bool type_ok = false;
    switch (field.type) {
        case FieldType::kString: type_ok = value.is_string(); break;
        case FieldType::kInteger: type_ok = value.is_number_integer(); break;
        case FieldType::kNumber: type_ok = value.is_number(); break;
        case FieldType::kBoolean: type_ok = value.is_boolean(); break;
        case FieldType::kStringList:
            type_ok = value.is_array() &&
                      std::all_of(value.begin(), value.end(),
                                  [](const json& item) { return item.is_string(); });
            break;
    }
    if (!type_ok) {
        return "expected " + expectation(field) + ", found " + json_kind(value);
    }
    if (field.type == FieldType::kInteger || field.type == FieldType::kNumber) {
        double number = value.get<double>();
        if (number < field.minimum || number > field.maximum) {
            return "expected " + expectation(field) + ", found " + json_kind(value);
        }
    }
    if (!field.allowed.empty()) {
        const std::string& text = value.get_ref<const std::string&>();
        bool found = false;
        for (const auto& allowed : field.allowed) {
            found = found || allowed == text;
        }
        if (!found) {
            return "expected " + expectation(field) + ", found " + json_kind(value);
        }
    }
    return std::nullopt;
}

const Field* find_field(const std::string& section, const std::string& key) {
    for (const Field& field : fields()) {
        if (field.section == section && field.key == key) {
            return &field;
        }
    }
    return nullptr;
}

bool is_section(const std::string& section) {
    for (const Field& field : fields()) {
        if (field.section == section) {
            return true;
        }
    }
    return false;
}

std::string upper(std::string text) {
    for (char& c : text) {
        c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    }
    return text;
}

// Parses an environment variable's text as the field's JSON type.
std::optional<json> parse_environment_value(const Field& field, const std::string& text) {
    switch (field.type) {
        case FieldType::kString: return json(text);
        case FieldType::kStringList: {
            json list = json::array();
            std::stringstream items(text);
            for (std::string item; std::getline(items, item, ',');) {
                if (!item.empty()) {
                    list.push_back(item);
                }
            }
            return list;
        }
        case FieldType::kBoolean:
            if (text == "true" || text == "1") {
                return json(true);
            }
            if (text == "false" || text == "0") {
                return json(false);
            }
            return std::nullopt;
        case FieldType::kInteger: {
            errno = 0;
            char* end = nullptr;
            long long value = std::strtoll(text.c_str(), &end, 10);
            if (text.empty() || errno != 0 || *end != '\0') {
                return std::nullopt;
            }
            return json(value);
        }
        case FieldType::kNumber: {
            errno = 0;
            char* end = nullptr;
            double value = std::strtod(text.c_str(), &end);
            if (text.empty() || errno != 0 || *end != '\0' || !std::isfinite(value)) {
                return std::nullopt;
            }
            return json(value);
        }
    }
    return std::nullopt;
}

}  // namespace

std::string environment_variable_name(const std::string& section, const std::string& key) {
    return "SLUICE_" + upper(section) + "_" + upper(key);
}

Result<Config> parse_config(const std::string& json_text, const std::string& origin) {
    // A key given twice is refused by its path (/model/path), as in request bodies: which of
    // the two values counts would otherwise depend on the parser.
    auto parsed = parse_json_unique_names(json_text, "");
    if (!parsed.ok()) {
        return parsed.status().with_context(origin);
    }
    const json& document = *parsed;
    if (!document.is_object()) {
        return invalid_argument(origin + ": /: expected an object, found " + json_kind(document));
    }
    Config config;
    for (const auto& [section, body] : document.items()) {
        if (section == "$schema") {
            continue;  // lets editors find configs/config.schema.json
        }
        if (!is_section(section)) {
            return invalid_argument(origin + ": /" + section + ": unknown key");
        }
        if (!body.is_object()) {
            return invalid_argument(origin + ": /" + section + ": expected an object, found " +
                                    json_kind(body));
        }
        for (const auto& [key, value] : body.items()) {
            std::string path = "/" + section + "/" + key;
            const Field* field = find_field(section, key);
            if (field == nullptr) {
                return invalid_argument(origin + ": " + path + ": unknown key");
            }
            if (auto problem = check_value(*field, value)) {
                return invalid_argument(origin + ": " + path + ": " + *problem);
            }
            field->set(config, value);
        }
    }
    SLUICE_RETURN_IF_ERROR(validate_config(config).with_context(origin));
    return config;
}

Result<Config> load_config_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        return not_found("config file '" + path + "' cannot be opened");
    }
    std::ostringstream text;
    text << in.rdbuf();
    if (in.bad()) {
        return io_error("config file '" + path + "' cannot be read");
    }
    return parse_config(text.str(), path);
}

Status apply_environment(Config& config, const std::map<std::string, std::string>& environment) {
    for (const auto& [name, text] : environment) {
        const Field* match = nullptr;
        bool in_section = false;
        for (const Field& field : fields()) {
            std::string prefix = "SLUICE_" + upper(field.section) + "_";
            in_section = in_section || name.rfind(prefix, 0) == 0;
            if (environment_variable_name(field.section, field.key) == name) {
                match = &field;
            }
        }
        if (match == nullptr) {
            if (in_section) {
                return invalid_argument("environment variable " + name + " names no setting");
            }
            continue;
        }
        auto value = parse_environment_value(*match, text);
        if (!value) {
            return invalid_argument("environment variable " + name + ": expected " +
                                    type_name(match->type) + ", found \"" + text + "\"");
        }
        if (auto problem = check_value(*match, *value)) {
            return invalid_argument("environment variable " + name + ": " + *problem);
        }
        match->set(config, *value);
    }
    return validate_config(config);
}

std::map<std::string, std::string> sluice_environment() {
    std::map<std::string, std::string> result;
    for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
        std::string_view text(*entry);
        if (text.rfind("SLUICE_", 0) != 0) {
            continue;
        }
        auto equals = text.find('=');
        if (equals == std::string_view::npos) {
            continue;
        }
        result.emplace(std::string(text.substr(0, equals)), std::string(text.substr(equals + 1)));
    }
    return result;
}

Status validate_config(const Config& config) {
    if (config.server.host.empty()) {
        return invalid_argument("/server/host: expected a host name or address, found \"\"");
    }
    if (config.storage.data_dir.empty()) {
        return invalid_argument("/storage/data_dir: expected a directory path, found \"\"");
    }
    const ParallelSettings& parallel = config.model.parallel;
    const Status parallel_ok = inference::validate_parallel_config(parallel);
    if (!parallel_ok.ok()) {
        return parallel_ok;
    }
    if (!config.model.securable.empty()) {
        auto parts = governance::split_full_name(governance::SecurableType::kModel,
                                                 config.model.securable);
        if (!parts.ok()) {
            return invalid_argument("/model/securable: " + parts.status().message());
        }
    }
    return Status();
}

nlohmann::json config_to_json(const Config& config) {
    json document = json::object();
    for (const Field& field : fields()) {
        document[field.section][field.key] = field.get(config);
    }
    return document;
}

nlohmann::json config_schema() {
    const Config defaults;
    json schema = {
        {"$schema", "https://json-schema.org/draft/2020-12/schema"},
        {"$id", "https://sluice.dev/schemas/config.schema.json"},
        {"title", "Sluice configuration"},
        {"description",
         "Configuration of `sluice serve`. Every key is optional and has the default shown. "
         "Environment variables SLUICE_<SECTION>_<KEY> override the file; flags override both."},
        {"type", "object"},
        {"additionalProperties", false},
        {"properties", {{"$schema", {{"type", "string"}}}}},
    };
    for (const Field& field : fields()) {
        json& section = schema["properties"][field.section];
        if (section.is_null()) {
            section = {{"type", "object"},
                       {"additionalProperties", false},
                       {"properties", json::object()}};
        }
        json property = {{"description", field.description + " (environment: " +
                                             environment_variable_name(field.section, field.key) +
                                             ")"},
                         {"default", field.get(defaults)}};
        switch (field.type) {
            case FieldType::kString: property["type"] = "string"; break;
            case FieldType::kInteger: property["type"] = "integer"; break;
            case FieldType::kNumber: property["type"] = "number"; break;
            case FieldType::kBoolean: property["type"] = "boolean"; break;
            case FieldType::kStringList:
                property["type"] = "array";
                property["items"] = {{"type", "string"}};
                break;
        }
        if (!field.allowed.empty()) {
            property["enum"] = field.allowed;
        }
        if (std::isfinite(field.minimum)) {
            property["minimum"] = field.type == FieldType::kInteger
                                      ? json(static_cast<long long>(field.minimum))
                                      : json(field.minimum);
        }
        if (std::isfinite(field.maximum)) {
            property["maximum"] = field.type == FieldType::kInteger
                                      ? json(static_cast<long long>(field.maximum))
                                      : json(field.maximum);
        }
        section["properties"][field.key] = property;
    }
    return schema;
}

}  // namespace sluice::app
