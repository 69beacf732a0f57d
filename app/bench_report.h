#pragma once
// The output of every `sluice bench NAME`: a readable table on stdout and, with --json, one JSON
// object of the figures as the last line, so that scripts can take `tail -n 1`.
//
// Thread safety: owned by one thread.

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace sluice::app {

class BenchReport {
public:
    // `name` is the benchmark ("tokenizer"); `machine` describes where it ran.
    explicit BenchReport(std::string name);

    void set_columns(std::vector<std::string> columns);
    // Adds a row of already formatted cells; the same number of cells as columns.
    void add_row(std::vector<std::string> cells);
    // A figure for the JSON object, at a JSON pointer-like dotted key ("decode.batch1_tok_s").
    void set_figure(const std::string& key, nlohmann::json value);
    void add_note(std::string note);

    // Prints the table (and notes), then the JSON line when `json` is set.
    void print(bool json) const;

    const nlohmann::json& figures() const { return figures_; }

private:
    std::string name_;
    std::vector<std::string> columns_;
    std::vector<std::vector<std::string>> rows_;
    std::vector<std::string> notes_;
    nlohmann::json figures_ = nlohmann::json::object();
};

// "AMD EPYC 7B13, 2 threads, 23.4 GiB" from /proc/cpuinfo, the thread count and /proc/meminfo.
std::string describe_machine();

// Formats a number with `digits` decimals.
std::string format_fixed(double value, int digits);

}  // namespace sluice::app
