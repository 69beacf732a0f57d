#include "app/bench_report.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <thread>

namespace sluice::app {

BenchReport::BenchReport(std::string name) : name_(std::move(name)) {
    figures_["bench"] = name_;
    figures_["machine"] = describe_machine();
}

void BenchReport::set_columns(std::vector<std::string> columns) { columns_ = std::move(columns); }

void BenchReport::add_row(std::vector<std::string> cells) {
    cells.resize(columns_.size());
    rows_.push_back(std::move(cells));
}

void BenchReport::set_figure(const std::string& key, nlohmann::json value) {
    nlohmann::json* node = &figures_;
    std::size_t start = 0;
    while (true) {
        std::size_t dot = key.find('.', start);
        std::string part = key.substr(start, dot == std::string::npos ? std::string::npos
                                                                       : dot - start);
        if (dot == std::string::npos) {
            (*node)[part] = std::move(value);
            return;
        }
        node = &(*node)[part];
        start = dot + 1;
    }
}

void BenchReport::add_note(std::string note) { notes_.push_back(std::move(note)); }

void BenchReport::print(bool json) const {
    std::vector<std::size_t> widths(columns_.size());
    for (std::size_t col = 0; col < columns_.size(); ++col) {
        widths[col] = columns_[col].size();
        for (const auto& row : rows_) {
            widths[col] = std::max(widths[col], row[col].size());
        }
    }
    auto print_row = [&](const std::vector<std::string>& cells) {
        std::string line;
        for (std::size_t col = 0; col < cells.size(); ++col) {
            std::string cell = cells[col];
            cell.resize(widths[col], ' ');
            line += (col == 0 ? "" : "  ") + cell;
        }
        while (!line.empty() && line.back() == ' ') {
            line.pop_back();
        }
        std::cout << line << "\n";
    };
    std::cout << "bench " << name_ << " on " << figures_["machine"].get<std::string>() << "\n\n";
    print_row(columns_);
    std::vector<std::string> rule;
    for (std::size_t width : widths) {
        rule.emplace_back(width, '-');
    }
    print_row(rule);
    for (const auto& row : rows_) {
        print_row(row);
    }
    for (const auto& note : notes_) {
        std::cout << "\n" << note << "\n";
    }
    if (json) {
        std::cout << figures_.dump() << "\n";
    }
    std::cout.flush();
}

std::string describe_machine() {
    std::string cpu = "unknown cpu";
    std::ifstream cpuinfo("/proc/cpuinfo");
    for (std::string line; std::getline(cpuinfo, line);) {
        if (line.rfind("model name", 0) == 0) {
            auto colon = line.find(':');
            if (colon != std::string::npos) {
                cpu = line.substr(colon + 2);
            }
            break;
        }
    }
    double mem_gib = 0;
    std::ifstream meminfo("/proc/meminfo");
    for (std::string line; std::getline(meminfo, line);) {
        if (line.rfind("MemTotal:", 0) == 0) {
            mem_gib = std::stod(line.substr(9)) / (1024.0 * 1024.0);
            break;
        }
    }
    return cpu + ", " + std::to_string(std::thread::hardware_concurrency()) + " threads, " +
           format_fixed(mem_gib, 1) + " GiB";
}

std::string format_fixed(double value, int digits) {
    char buffer[64];
    std::snprintf(buffer, sizeof(buffer), "%.*f", digits, value);
    return buffer;
}

}  // namespace sluice::app
