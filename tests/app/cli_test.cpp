#include "app/cli.h"

#include <doctest/doctest.h>

#include <fstream>
#include <random>

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

TEST_CASE("version and schema run") {
    CHECK(run({"version", "--json"}) == 0);
    CHECK(run({"config", "schema"}) == 0);
}
