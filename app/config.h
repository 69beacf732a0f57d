#pragma once
// Sluice's configuration: a JSON file, then SLUICE_<SECTION>_<KEY> environment variables, then
// command-line flags, each overriding the one before.
//
// Every setting is declared once in config.cpp's field table, which drives parsing, validation,
// environment overrides, `sluice config print` and the JSON Schema (`sluice config schema`, kept
// in configs/config.schema.json and checked against the table by a test).
//
// Errors name the JSON path and the expected type: "/server/port: expected an integer in
// [1, 65535], found string \"80\"".
//
// Thread safety: Config is a value type; load once at start-up, then share as const.

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "inference/parallel_config.h"

namespace sluice::app {

struct ServerConfig {
    std::string host = "127.0.0.1";
    int port = 8080;
    int threads = 8;          // HTTP connection threads kept running
    int max_threads = 1024;   // more start while all are busy (streams, keep-alive), up to this
    std::int64_t max_body_bytes = 8 * 1024 * 1024;      // larger bodies get 413
    double read_timeout_s = 30;
    double write_timeout_s = 30;
    double shutdown_deadline_s = 20;  // in-flight requests get this long after SIGTERM
    bool metrics_public = true;       // false: /metrics needs a bearer token like the API
};

struct StorageConfig {
    std::string data_dir = "./data";
};

struct GovernanceConfig {
    std::int64_t audit_checkpoint_every = 1000;  // audit records between signed checkpoints
    // "queued": a response may leave before its audit records are committed (a few ms later);
    // "durable": it waits for their commit. docs/governance.md weighs the two.
    std::string audit_acknowledge = "queued";
    std::string secret_key_file;  // "": secrets.key in the data directory (created 0600)
};

// The continuous sync of sources bound to indexes (app/sync_service.h).
struct SyncConfig {
    std::int64_t max_batch = 500;  // changes per poll and per atomic write batch
    double idle_wait_s = 1;        // longest wait on a caught-up source before polling again
    std::int64_t pipeline_depth = 2;  // batches prepared ahead of the one committing; 0: serial
};

struct LogConfig {
    std::string level = "info";  // debug | info | warn | error
    std::string format = "json";  // json | text
    bool access_log = true;
};

// How many ranks share the model and how they split it (docs/parallel.md); the configuration's
// top-level `parallel` section, read straight into the engine's own setting.
using ParallelSettings = inference::ParallelConfig;

// The model `sluice serve` loads, and how its engine batches and queues requests.
struct ModelSettings {
    std::string path = "./models/tiny";  // a Hugging Face DBRX checkpoint folder
    std::string name;                    // the model id clients send; empty: the folder's name
    std::string weights = "auto";        // auto | f32 | bf16 | int8
    std::string backend = "auto";        // auto | cpu | cuda (auto: cuda when a GPU is visible)
    int threads = 0;                     // CPU backend threads; 0: every hardware thread
    std::int64_t kv_cache_blocks = 0;    // 0: derived from kv_cache_bytes
    std::int64_t kv_cache_bytes = 256LL * 1024 * 1024;
    int max_batch_tokens = 512;
    int max_running = 64;
    int max_queued_requests = 64;
    double request_timeout_s = 600;  // 0: none
    std::string system_prompt;       // empty: the chat template's default
    bool prefix_caching = true;
    bool overlap_output = true;     // SchedulerOptions::overlap_output
    int host_sampling_threads = 0;  // SchedulerOptions::host_sampling_threads
    bool cuda_graphs = true;     // CudaBackendOptions::decode_graphs
    // The catalog model governing the endpoint (EXECUTE needed to query it); empty: none.
    std::string securable;
    ParallelSettings parallel;  // read from the `parallel` section
};

struct Config {
    ServerConfig server;
    StorageConfig storage;
    GovernanceConfig governance;
    SyncConfig sync;
    LogConfig log;
    ModelSettings model;
};

// Parses a whole configuration from JSON text. Absent keys keep their defaults; unknown keys,
// keys given twice in one object, wrong types and out-of-range values are kInvalidArgument
// naming the path. `origin` (a file name) prefixes messages.
Result<Config> parse_config(const std::string& json_text, const std::string& origin);

// Reads and parses a configuration file.
Result<Config> load_config_file(const std::string& path);

// Applies SLUICE_<SECTION>_<KEY> variables from `environment` (name -> value). Values are parsed
// as the field's type; a bad value is kInvalidArgument naming the variable. A variable that
// starts with a section's prefix (SLUICE_SERVER_) but names no setting of it is an error too, so
// that a typo does not pass unnoticed.
Status apply_environment(Config& config, const std::map<std::string, std::string>& environment);

// The process environment as a map, restricted to names beginning with SLUICE_.
std::map<std::string, std::string> sluice_environment();

// Validates relations between fields that no single field's range expresses.
Status validate_config(const Config& config);

nlohmann::json config_to_json(const Config& config);

// The JSON Schema (draft 2020-12) of the configuration file.
nlohmann::json config_schema();

// Name of the environment variable that overrides /section/key.
std::string environment_variable_name(const std::string& section, const std::string& key);

}  // namespace sluice::app
