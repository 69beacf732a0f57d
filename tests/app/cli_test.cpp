#include "app/cli.h"

#include <doctest/doctest.h>
#include <sys/stat.h>

#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "agents/agent_store.h"
#include "app/data_dir.h"
#include "app/source_catalog.h"
#include "governance/governance.h"

using namespace sluice::app;

namespace {

int run(std::vector<std::string> args) {
    args.insert(args.begin(), "sluice");
    std::vector<const char*> argv;
    for (const auto& arg : args) {
        argv.push_back(arg.c_str());
    }
    Cli cli;
    return cli.run(static_cast<int>(argv.size()), argv.data());
}

// What a command writes to stderr while it runs.
struct CapturedError {
    std::ostringstream text;
    std::streambuf* saved = std::cerr.rdbuf(text.rdbuf());
    ~CapturedError() { std::cerr.rdbuf(saved); }
};

// What a command prints on stdout while it runs.
struct CapturedOutput {
    std::ostringstream text;
    std::streambuf* saved = std::cout.rdbuf(text.rdbuf());
    ~CapturedOutput() { std::cout.rdbuf(saved); }
};

// The exit code and stdout of a command; stdout is captured only while it runs, since doctest
// reports on it too.
std::pair<int, std::string> run_for_output(std::vector<std::string> args) {
    CapturedOutput captured;
    const int code = run(std::move(args));
    return {code, captured.text.str()};
}

std::filesystem::path fresh_dir(const std::string& name) {
    return std::filesystem::temp_directory_path() /
           ("sluice-cli-" + name + "-" + std::to_string(std::random_device{}()));
}

// Every path in `dir` (itself too) with its permissions and, for files, size: equal listings
// before and after a command mean that it created, removed and restricted nothing.
std::map<std::string, std::string> listing(const std::filesystem::path& dir) {
    std::map<std::string, std::string> out;
    auto describe = [](const std::filesystem::directory_entry& entry) {
        auto perms = static_cast<unsigned>(entry.status().permissions());
        return std::to_string(perms) +
               (entry.is_regular_file() ? " file " + std::to_string(entry.file_size()) : " folder");
    };
    out["."] = describe(std::filesystem::directory_entry(dir));
    for (const auto& entry : std::filesystem::recursive_directory_iterator(dir)) {
        out[std::filesystem::relative(entry.path(), dir).string()] = describe(entry);
    }
    return out;
}

// The commands that only use an existing data directory, each run against `data`; `archive` is
// the file `audit archive` would write.
std::vector<std::vector<std::string>> commands_using_data_dir(
    const std::string& data, const std::filesystem::path& archive) {
    return {
        {"source", "list", "--data-dir", data},
        {"source", "status", "kb", "--data-dir", data},
        {"source", "poll", "kb", "--data-dir", data},
        {"source", "bind", "kb", "--index", "articles", "--data-dir", data},
        {"source", "sync", "kb", "--data-dir", data},
        {"source", "remove", "kb", "--data-dir", data},
        {"audit", "verify", "--data-dir", data},
        {"audit", "export", "--data-dir", data},
        {"audit", "archive", "--data-dir", data, "--up-to-seq", "1", "--file", archive.string()},
        {"search", "--data-dir", data, "--index", "articles", "-q", "anything"},
        {"ask", "--data-dir", data, "--index", "articles", "anything"},
        {"eval", "sets", "--data-dir", data},
        {"eval", "compare", "--data-dir", data, "run_a", "run_b"},
        {"eval", "report", "--data-dir", data, "run_a"},
    };
}

}  // namespace

TEST_CASE("config check accepts the default and refuses a bad file") {
    CHECK(run({"config", "check", std::string(SLUICE_SOURCE_DIR) + "/configs/default.json"}) == 0);
    auto bad = std::filesystem::temp_directory_path() /
               ("sluice-cli-" + std::to_string(std::random_device{}()) + ".json");
    std::ofstream(bad) << R"({"storage": {"data_dir": 5}})";
    CHECK(run({"config", "check", bad.string()}) == 1);
    std::filesystem::remove(bad);
}

TEST_CASE("usage errors exit 2 and help exits 0") {
    CHECK(run({"no-such-command"}) != 0);
    CHECK(run({"serve", "--port", "99999"}) != 0);
    CHECK(run({"--help"}) == 0);
    CHECK(run({"config", "--help"}) == 0);
}

TEST_CASE("model quantize refuses a shard size out of range before reading anything") {
    for (const std::string size : {"1e30", "0.0000001", "-1"}) {
        CAPTURE(size);
        CapturedError error;
        CHECK(run({"model", "quantize", "--model", "/nonexistent/model", "--out",
                   "/nonexistent/out", "--shard-gb", size}) == 1);
        CHECK(error.text.str().find("--shard-gb: expected 0.0009765625 (1 MiB) to 1048576 "
                                    "(1 PiB), found") != std::string::npos);
    }
}

TEST_CASE("version and schema run") {
    CHECK(run({"version", "--json"}) == 0);
    CHECK(run({"config", "schema"}) == 0);
}

TEST_CASE("commands that only use a data directory refuse a missing one and create nothing") {
    const auto parent = fresh_dir("missing");
    const std::string data = (parent / "typo").string();
    const auto commands = commands_using_data_dir(data, parent / "archive.jsonl");
    for (const auto& command : commands) {
        CapturedError captured;
        const int code = run(command);
        const std::string error = captured.text.str();
        INFO(command[0] << " " << command[1] << ": " << error);
        CHECK(code != 0);
        CHECK(error.find("data directory '" + data + "' does not exist") != std::string::npos);
        CHECK_FALSE(std::filesystem::exists(parent));
    }
}

TEST_CASE("commands that only use a data directory leave a folder that holds none as it was") {
    const auto dir = fresh_dir("empty");
    std::filesystem::create_directories(dir);
    std::filesystem::permissions(dir, std::filesystem::perms::owner_all |
                                          std::filesystem::perms::group_read |
                                          std::filesystem::perms::group_exec);
    const std::string data = dir.string();
    const auto before = listing(dir);
    auto commands = commands_using_data_dir(data, dir / "archive.jsonl");
    commands.push_back({"eval", "run", "--data-dir", data, "--set", "main.evals.qa"});
    for (const auto& command : commands) {
        CapturedError captured;
        const int code = run(command);
        const std::string error = captured.text.str();
        INFO(command[0] << " " << command[1] << ": " << error);
        CHECK(code != 0);
        CHECK(error.find("folder '" + data + "' holds no sluice data directory") !=
              std::string::npos);
        CHECK(listing(dir) == before);
    }
    std::filesystem::remove_all(dir);
}

TEST_CASE("source commands on a data directory without sources find none and create no registry") {
    const auto dir = fresh_dir("no-sources");
    std::filesystem::create_directories(dir);
    REQUIRE(sluice::governance::Governance::open(dir).ok());
    const auto before = listing(dir);
    auto [listed, printed] = run_for_output({"source", "list", "--data-dir", dir.string()});
    CHECK(listed == 0);
    CHECK(nlohmann::json::parse(printed) == nlohmann::json{{"sources", nlohmann::json::array()}});
    for (const std::string verb : {"status", "poll", "remove"}) {
        CapturedError captured;
        CHECK(run({"source", verb, "kb", "--data-dir", dir.string()}) == 1);
        INFO(verb << ": " << captured.text.str());
        CHECK(captured.text.str().find("source 'kb' does not exist") != std::string::npos);
    }
    CHECK(listing(dir) == before);
    CHECK_FALSE(std::filesystem::exists(dir / "sources"));
    std::filesystem::remove_all(dir);
}

TEST_CASE("audit verify never creates a signing key") {
    const auto dir = fresh_dir("no-key");
    std::filesystem::create_directories(dir);
    const auto key = dir / sluice::governance::kSigningKeyFile;

    SUBCASE("a log with records cannot be checked without the key: exit 2, naming it") {
        REQUIRE(
            run_for_output({"token", "create", "--data-dir", dir.string(), "--principal", "ops"})
                .first == 0);
        REQUIRE(std::filesystem::remove(key));
        const auto before = listing(dir);
        CapturedError captured;
        auto [code, printed] = run_for_output({"audit", "verify", "--data-dir", dir.string()});
        CHECK(code == 2);
        CHECK(captured.text.str().find("no audit signing key ('" + key.string() +
                                       "' does not exist)") != std::string::npos);
        CHECK(printed.empty());
        CHECK_FALSE(std::filesystem::exists(key));
        CHECK(listing(dir) == before);
    }
    SUBCASE("an empty log without a key has nothing to verify: exit 0 with a note") {
        REQUIRE(sluice::governance::Store::open(dir / sluice::governance::kCatalogFile).ok());
        const auto before = listing(dir);
        auto [code, printed] = run_for_output({"audit", "verify", "--data-dir", dir.string()});
        CHECK(code == 0);
        auto report = nlohmann::json::parse(printed);
        CHECK(report["ok"] == true);
        CHECK(report["records"] == 0);
        CHECK(report["note"].get<std::string>().find("no audit signing key") != std::string::npos);
        CHECK_FALSE(std::filesystem::exists(key));
        CHECK(listing(dir) == before);
    }
    std::filesystem::remove_all(dir);
}

TEST_CASE("a lost signing key stops writers until a rotation records a new one") {
    const auto dir = fresh_dir("rotate");
    const auto key = dir / sluice::governance::kSigningKeyFile;
    REQUIRE(run_for_output({"token", "create", "--data-dir", dir.string(), "--principal", "ops"})
                .first == 0);
    REQUIRE(std::filesystem::remove(key));
    {
        CapturedError captured;
        CHECK(run_for_output({"token", "create", "--data-dir", dir.string(), "--principal", "b"})
                  .first == 1);
        CHECK(captured.text.str().find("--previous-key-lost") != std::string::npos);
        CHECK_FALSE(std::filesystem::exists(key));
    }
    {
        CapturedError captured;
        CHECK(run_for_output({"audit", "rotate-key", "--data-dir", dir.string()}).first == 1);
        CHECK(captured.text.str().find("rotate with 'previous key lost'") != std::string::npos);
    }
    {
        // A running server holds the data directory's lock: no rotation under it.
        auto held = DataDir::open(dir, DataDirMode::kMustExist);
        REQUIRE(held.ok());
        CapturedError captured;
        CHECK(run_for_output(
                  {"audit", "rotate-key", "--data-dir", dir.string(), "--previous-key-lost"})
                  .first == 1);
        CHECK(captured.text.str().find("is in use by another sluice process") != std::string::npos);
        CHECK_FALSE(std::filesystem::exists(key));
    }
    CapturedError quiet;
    auto [code, printed] =
        run_for_output({"audit", "rotate-key", "--data-dir", dir.string(), "--previous-key-lost"});
    REQUIRE(code == 0);
    auto rotation = nlohmann::json::parse(printed);
    CHECK(rotation["previous_key"] == "lost");
    CHECK(rotation["public_key"].get<std::string>().size() == 64);
    CHECK(rotation["retired_key_file"] == "");
    CHECK(std::filesystem::exists(key));

    CHECK(
        run_for_output({"token", "create", "--data-dir", dir.string(), "--principal", "b"}).first ==
        0);
    auto [verified, report] = run_for_output({"audit", "verify", "--data-dir", dir.string()});
    CHECK(verified == 0);
    CHECK(nlohmann::json::parse(report)["key_rotations"] == 1);
    std::filesystem::remove_all(dir);
}

TEST_CASE("connection forget-secrets drops the secrets a lost key sealed, audited") {
    const auto dir = fresh_dir("forget-secrets");
    std::filesystem::create_directories(dir);
    const auto catalog = dir / sluice::governance::kCatalogFile;
    {
        auto gov = sluice::governance::Governance::open(dir);
        REQUIRE(gov.ok());
        auto store = sluice::agents::AgentStore::open(catalog, (*gov)->secrets());
        REQUIRE(store.ok());
        auto crm = sluice::agents::connection_from_json(
            {{"name", "crm"}, {"allowed_hosts", {"crm.local"}}, {"secret", "Bearer t0ken"}});
        REQUIRE(crm.ok());
        REQUIRE((*store)->put_connection(*crm).ok());
    }
    REQUIRE(std::filesystem::remove(dir / sluice::governance::kSecretKeyFile));
    {
        // A running server holds the data directory's lock.
        auto held = DataDir::open(dir, DataDirMode::kMustExist);
        REQUIRE(held.ok());
        CapturedError captured;
        CHECK(run_for_output({"connection", "forget-secrets", "--data-dir", dir.string()}).first ==
              1);
        CHECK(captured.text.str().find("is in use by another sluice process") != std::string::npos);
    }
    auto [code, printed] =
        run_for_output({"connection", "forget-secrets", "--data-dir", dir.string()});
    REQUIRE(code == 0);
    const auto result = nlohmann::json::parse(printed);
    CHECK(result["forgotten"] == nlohmann::json{"crm"});
    auto gov = sluice::governance::Governance::open(dir);
    REQUIRE(gov.ok());
    CHECK(result["key_id"] == (*gov)->secrets().key_id());
    auto store = sluice::agents::AgentStore::open(catalog, (*gov)->secrets());
    REQUIRE(store.ok());
    auto crm = (*store)->connection("crm");
    REQUIRE(crm.ok());
    CHECK(crm->secret.empty());
    auto [exported, records] = run_for_output({"audit", "export", "--data-dir", dir.string()});
    CHECK(exported == 0);
    CHECK(records.find("\"action\":\"connection.secret.forget\"") != std::string::npos);
    CHECK(records.find("\"securable\":\"connection:crm\"") != std::string::npos);
    std::filesystem::remove_all(dir);
}

TEST_CASE("commands that initialise a data directory create it, owner-only") {
    const auto parent = fresh_dir("create");
    std::filesystem::create_directories(parent);
    const auto token_dir = parent / "tokens";
    CHECK(run({"token", "create", "--data-dir", token_dir.string(), "--principal", "ops"}) == 0);
    // `source add` makes the folders above it too, as it always has.
    const auto source_dir = parent / "new" / "sources";
    CHECK(run({"source", "add", "kb", "--type", "http", "--data-dir", source_dir.string()}) == 0);
    for (const auto& dir : {token_dir, source_dir}) {
        struct stat info {};
        REQUIRE(::stat(dir.c_str(), &info) == 0);
        CHECK((info.st_mode & 0777) == 0700);
    }
    // Once it exists, the commands that only read it work.
    CHECK(run({"source", "list", "--data-dir", source_dir.string()}) == 0);
    CHECK(run({"audit", "export", "--data-dir", token_dir.string()}) == 0);
    std::filesystem::remove_all(parent);
}

TEST_CASE("source add creates a source as POST /api/sources does, acting as the admin") {
    const auto dir = fresh_dir("source-add");
    std::filesystem::create_directories(dir);
    {
        auto gov = sluice::governance::Governance::open(dir);
        REQUIRE(gov.ok());
        REQUIRE((*gov)->bootstrap_admin().ok());
    }
    CHECK(run({"source", "add", "kb", "--type", "http", "--schema", "sales.feeds", "--data-dir",
               dir.string()}) == 0);
    CHECK(run({"source", "add", "kb", "--type", "http", "--data-dir", dir.string()}) == 1);
    {
        // The same key twice in --config is refused as in request bodies.
        CapturedError captured;
        CHECK(run({"source", "add", "dup", "--type", "http", "--config",
                   R"({"max_events_per_request": 1, "max_events_per_request": 2})", "--data-dir",
                   dir.string()}) == 1);
        CHECK(captured.text.str().find("--config: /max_events_per_request: the name") !=
              std::string::npos);
    }
    auto gov = sluice::governance::Governance::open(dir);
    REQUIRE(gov.ok());
    auto object = sluice::app::find_source_object((*gov)->store(), "kb");
    REQUIRE(object.ok());
    CHECK(object->full_name == "sales.feeds.kb");
    CHECK(object->owner == "admin");
    auto schema =
        (*gov)->store().securable(sluice::governance::SecurableType::kSchema, "sales.feeds");
    REQUIRE(schema.ok());
    CHECK(schema->owner == "admin");
    CHECK_FALSE(sluice::app::find_source_object((*gov)->store(), "dup").ok());
    std::filesystem::remove_all(dir);
}
