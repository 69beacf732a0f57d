#include "app/config.h"

#include <doctest/doctest.h>

#include <fstream>
#include <sstream>

using sluice::StatusCode;
using namespace sluice::app;

TEST_CASE("defaults are the embedded CPU default") {
    Config config;
    CHECK(config.server.host == "127.0.0.1");
    CHECK(config.server.port == 8080);
    CHECK(config.storage.data_dir == "./data");
}

TEST_CASE("configs/default.json parses and matches the built-in defaults") {
    auto config = load_config_file(std::string(SLUICE_SOURCE_DIR) + "/configs/default.json");
    REQUIRE_MESSAGE(config.ok(), config.status().to_string());
    CHECK(config_to_json(*config) == config_to_json(Config{}));
}

TEST_CASE("configs/config.schema.json is the schema the field table produces") {
    std::ifstream in(std::string(SLUICE_SOURCE_DIR) + "/configs/config.schema.json");
    REQUIRE(in);
    std::stringstream text;
    text << in.rdbuf();
    CHECK_MESSAGE(nlohmann::json::parse(text.str()) == config_schema(),
                  "regenerate with: sluice config schema > configs/config.schema.json");
}

TEST_CASE("parse errors name the JSON path and the expected type") {
    auto expect_error = [](const std::string& text, const std::string& fragment) {
        auto config = parse_config(text, "test.json");
        REQUIRE_FALSE(config.ok());
        CHECK(config.status().code() == StatusCode::kInvalidArgument);
        CHECK_MESSAGE(config.status().message().find(fragment) != std::string::npos,
                      config.status().message());
    };
    expect_error(R"({"server": {"port": "80"}})",
                 "test.json: /server/port: expected an integer in [0, 65535], found string \"80\"");
    expect_error(R"({"server": {"port": 70000}})", "/server/port: expected an integer in [0, 65535]");
    expect_error(R"({"server": {"port": 80.5}})", "found number 80.5");
    expect_error(R"({"server": {"prot": 80}})", "/server/prot: unknown key");
    expect_error(R"({"sever": {}})", "/sever: unknown key");
    expect_error(R"({"server": []})", "/server: expected an object, found an array");
    expect_error(R"({"log": {"level": "loud"}})",
                 "/log/level: expected one of \"debug\", \"info\", \"warn\", \"error\"");
    expect_error(R"({"log": {"access_log": "yes"}})", "expected a boolean");
    expect_error(R"({"server": {"port": 80,}})", "malformed JSON at byte");
    expect_error(R"([1, 2])", "/: expected an object");
    expect_error(R"({"server": {"host": ""}})", "/server/host");
}

TEST_CASE("a key given twice is refused by its path") {
    auto twice =
        parse_config(R"({"model": {"path": "/models/a", "path": "/models/b"}})", "test.json");
    REQUIRE_FALSE(twice.ok());
    CHECK(twice.status().code() == StatusCode::kInvalidArgument);
    CHECK(twice.status().message() ==
          "test.json: /model/path: the name 'path' appears twice in one object");
    auto section = parse_config(R"({"server": {"port": 80}, "server": {"port": 81}})", "test.json");
    REQUIRE_FALSE(section.ok());
    CHECK(section.status().message() ==
          "test.json: /server: the name 'server' appears twice in one object");
    // The same key in two sections is two settings.
    auto config =
        parse_config(R"({"server": {"threads": 4}, "log": {"level": "warn"}})", "test.json");
    CHECK_MESSAGE(config.ok(), config.status().to_string());
}

TEST_CASE("a number no setting can hold is an error, not an exception") {
    auto huge = parse_config(R"({"server": {"port": 1e400}})", "test.json");
    REQUIRE_FALSE(huge.ok());
    CHECK(huge.status().message().starts_with("test.json: JSON that cannot be read"));
}

TEST_CASE("environment variables override the file and are validated") {
    Config config;
    REQUIRE(apply_environment(config, {{"SLUICE_SERVER_PORT", "9090"},
                                       {"SLUICE_LOG_ACCESS_LOG", "false"},
                                       {"SLUICE_SERVER_READ_TIMEOUT_S", "2.5"},
                                       {"SLUICE_STORAGE_DATA_DIR", "/srv/sluice"},
                                       {"SLUICE_UNRELATED", "kept out"}})
                .ok());
    CHECK(config.server.port == 9090);
    CHECK_FALSE(config.log.access_log);
    CHECK(config.server.read_timeout_s == doctest::Approx(2.5));
    CHECK(config.storage.data_dir == "/srv/sluice");

    auto bad_number = apply_environment(config, {{"SLUICE_SERVER_PORT", "80x"}});
    CHECK(bad_number.code() == StatusCode::kInvalidArgument);
    CHECK(bad_number.message().find("SLUICE_SERVER_PORT") != std::string::npos);

    auto out_of_range = apply_environment(config, {{"SLUICE_SERVER_THREADS", "0"}});
    CHECK(out_of_range.message().find("SLUICE_SERVER_THREADS: expected an integer in [1, 1024]") !=
          std::string::npos);

    auto typo = apply_environment(config, {{"SLUICE_SERVER_PROT", "1"}});
    CHECK(typo.message() == "environment variable SLUICE_SERVER_PROT names no setting");
}

TEST_CASE("environment variable names follow SLUICE_<SECTION>_<KEY>") {
    CHECK(environment_variable_name("storage", "data_dir") == "SLUICE_STORAGE_DATA_DIR");
}

TEST_CASE("a missing file is not_found") {
    auto config = load_config_file("/nonexistent/sluice.json");
    CHECK(config.status().code() == StatusCode::kNotFound);
}

TEST_CASE("the parallel section selects the plan and validates its sizes and nodes") {
    auto config = parse_config(
        R"({"parallel": {"tensor": 4, "nodes": ["10.0.0.1:29500", "10.0.0.2:29500"]}})",
        "test.json");
    REQUIRE_MESSAGE(config.ok(), config.status().to_string());
    CHECK(config->model.parallel.tensor == 4);
    CHECK(config->model.parallel.expert == 1);
    CHECK(config->model.parallel.nodes ==
          std::vector<std::string>{"10.0.0.1:29500", "10.0.0.2:29500"});
    CHECK(config_to_json(*config)["parallel"]["nodes"].size() == 2);

    auto error_of = [](const std::string& text) {
        auto parsed = parse_config(text, "test.json");
        REQUIRE_FALSE(parsed.ok());
        CHECK(parsed.status().code() == StatusCode::kInvalidArgument);
        return parsed.status().message();
    };
    CHECK(error_of(R"({"parallel": {"tensor": 0}})") ==
          "test.json: /parallel/tensor: expected an integer in [1, 4096], found integer 0");
    CHECK(error_of(R"({"parallel": {"nodes": "a:1"}})") ==
          "test.json: /parallel/nodes: expected an array of strings, found string \"a:1\"");
    CHECK(error_of(R"({"parallel": {"nodes": ["a:1", 2]}})").find("expected an array of strings") !=
          std::string::npos);
    CHECK(error_of(R"({"parallel": {"nodes": ["a:1", "b:99999"]}})") ==
          "test.json: config field 'parallel.nodes[1]': port '99999' is not a number in 1..65535");
    // Both above 1: a grid of tensor x expert ranks, bounded in all.
    auto grid = parse_config(R"({"parallel": {"tensor": 2, "expert": 4}})", "test.json");
    REQUIRE_MESSAGE(grid.ok(), grid.status().to_string());
    CHECK(grid->model.parallel.tensor * grid->model.parallel.expert == 8);
    CHECK(error_of(R"({"parallel": {"tensor": 128, "expert": 64}})") ==
          "test.json: config field 'parallel': tensor 128 x expert 64 = 8192 ranks, expected at "
          "most 4096");

    Config from_environment;
    REQUIRE(apply_environment(from_environment, {{"SLUICE_PARALLEL_EXPERT", "2"},
                                                 {"SLUICE_PARALLEL_NODES", "h1:1,h2:2"}})
                .ok());
    CHECK(from_environment.model.parallel.expert == 2);
    CHECK(from_environment.model.parallel.nodes == std::vector<std::string>{"h1:1", "h2:2"});
    CHECK(apply_environment(from_environment, {{"SLUICE_PARALLEL_NODES", "h1"}}).code() ==
          StatusCode::kInvalidArgument);
}

TEST_CASE("sync.pipeline_depth is read, bounded and refused by name") {
    CHECK(Config{}.sync.pipeline_depth == 2);
    auto serial = parse_config(R"({"sync": {"pipeline_depth": 0}})", "test.json");
    REQUIRE_MESSAGE(serial.ok(), serial.status().to_string());
    CHECK(serial->sync.pipeline_depth == 0);
    CHECK(config_to_json(*serial)["sync"]["pipeline_depth"] == 0);

    auto error_of = [](const std::string& text) {
        auto parsed = parse_config(text, "test.json");
        REQUIRE_FALSE(parsed.ok());
        CHECK(parsed.status().code() == StatusCode::kInvalidArgument);
        return parsed.status().message();
    };
    CHECK(error_of(R"({"sync": {"pipeline_depth": -1}})") ==
          "test.json: /sync/pipeline_depth: expected an integer in [0, 64], found integer -1");
    CHECK(error_of(R"({"sync": {"pipeline_depth": 65}})") ==
          "test.json: /sync/pipeline_depth: expected an integer in [0, 64], found integer 65");
    CHECK(error_of(R"({"sync": {"pipeline_depth": 1.5}})").find("/sync/pipeline_depth") !=
          std::string::npos);

    Config config;
    REQUIRE(apply_environment(config, {{"SLUICE_SYNC_PIPELINE_DEPTH", "7"}}).ok());
    CHECK(config.sync.pipeline_depth == 7);
    auto bad = apply_environment(config, {{"SLUICE_SYNC_PIPELINE_DEPTH", "deep"}});
    CHECK(bad.code() == StatusCode::kInvalidArgument);
    CHECK(bad.message().find("SLUICE_SYNC_PIPELINE_DEPTH") != std::string::npos);
}
