#pragma once
// Runs the sluice binary under test to completion, for integration tests of CLI commands.

#include <doctest/doctest.h>
#include <sys/wait.h>

#include <cstdio>
#include <string>
#include <utility>
#include <vector>

namespace sluice::testing {

// Runs SLUICE_BINARY with `args` (each single-quoted for the shell); stderr is discarded.
// Returns the exit code and everything written to stdout.
inline std::pair<int, std::string> run_sluice(const std::vector<std::string>& args) {
    std::string command = SLUICE_BINARY;
    for (const auto& arg : args) {
        command += " '" + arg + "'";
    }
    std::string out;
    FILE* pipe = ::popen((command + " 2>/dev/null").c_str(), "r");
    REQUIRE(pipe != nullptr);
    char buffer[4096];
    while (std::fgets(buffer, sizeof(buffer), pipe) != nullptr) {
        out += buffer;
    }
    const int status = ::pclose(pipe);
    return {WEXITSTATUS(status), out};
}

}  // namespace sluice::testing
