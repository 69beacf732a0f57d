#include "app/metrics.h"

#include <dirent.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>

#include "app/build_info.h"

namespace sluice::app {
namespace {

std::string number(double value) {
    std::ostringstream out;
    out.precision(17);
    out << value;
    return out.str();
}

// Bucket bounds as written in configuration: 0.005, not 0.0050000000000000001.
std::string bucket_label(double value) {
    std::ostringstream out;
    out << value;
    return out.str();
}

// Resident and virtual memory in bytes from /proc/self/status (VmRSS, VmSize in kB).
std::pair<double, double> process_memory() {
    std::ifstream status("/proc/self/status");
    double rss = 0;
    double vsz = 0;
    for (std::string line; std::getline(status, line);) {
        if (line.rfind("VmRSS:", 0) == 0) {
            rss = std::stod(line.substr(6)) * 1024;
        } else if (line.rfind("VmSize:", 0) == 0) {
            vsz = std::stod(line.substr(7)) * 1024;
        }
    }
    return {rss, vsz};
}

// User plus system CPU seconds from /proc/self/stat (fields 14 and 15, in clock ticks).
double process_cpu_seconds() {
    std::ifstream stat("/proc/self/stat");
    std::string text;
    std::getline(stat, text);
    // The command name (field 2) may hold spaces; fields after it follow the closing paren.
    auto close = text.rfind(')');
    if (close == std::string::npos) {
        return 0;
    }
    std::istringstream rest(text.substr(close + 2));
    std::string field;
    double utime = 0;
    double stime = 0;
    for (int index = 3; rest >> field; ++index) {
        if (index == 14) {
            utime = std::stod(field);
        } else if (index == 15) {
            stime = std::stod(field);
            break;
        }
    }
    return (utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

int open_file_descriptors() {
    int count = 0;
    DIR* dir = ::opendir("/proc/self/fd");
    if (dir == nullptr) {
        return 0;
    }
    while (::readdir(dir) != nullptr) {
        ++count;
    }
    ::closedir(dir);
    return count - 3;  // ".", ".." and the descriptor opendir itself holds
}

}  // namespace

std::string escape_label_value(const std::string& value) {
    std::string out;
    for (char c : value) {
        if (c == '\\') {
            out += "\\\\";
        } else if (c == '"') {
            out += "\\\"";
        } else if (c == '\n') {
            out += "\\n";
        } else {
            out += c;
        }
    }
    return out;
}

Metrics::Metrics(const BuildInfo& build) {
    build_labels_ = "version=\"" + escape_label_value(build.version) + "\",revision=\"" +
                    escape_label_value(build.git_revision) + "\",build_type=\"" +
                    escape_label_value(build.build_type) + "\",cuda=\"" +
                    (build.cuda ? "true" : "false") + "\",nccl=\"" +
                    (build.nccl ? "true" : "false") + "\"";
    start_time_seconds_ = std::chrono::duration<double>(
                              std::chrono::system_clock::now().time_since_epoch())
                              .count();
}

void Metrics::observe_request(const std::string& route, const std::string& method, int status,
                              double seconds) {
    std::lock_guard lock(mutex_);
    ++requests_[{route, method, status}];
    Histogram& histogram = latency_[{route, method}];
    for (std::size_t i = 0; i < kLatencyBuckets.size(); ++i) {
        if (seconds <= kLatencyBuckets[i]) {
            ++histogram.buckets[i];
        }
    }
    ++histogram.count;
    histogram.sum += seconds;
}

void Metrics::set_in_flight(int delta) {
    std::lock_guard lock(mutex_);
    in_flight_ += delta;
}

void Metrics::add_collector(std::function<std::string()> collector) {
    std::lock_guard lock(mutex_);
    collectors_.push_back(std::move(collector));
}

std::string Metrics::render() const {
    std::ostringstream out;
    out << "# HELP sluice_build_info Build of the running server.\n"
        << "# TYPE sluice_build_info gauge\n"
        << "sluice_build_info{" << build_labels_ << "} 1\n";
    {
        std::lock_guard lock(mutex_);
        out << "# HELP sluice_http_requests_total HTTP requests answered, by route, method and "
               "status.\n"
            << "# TYPE sluice_http_requests_total counter\n";
        for (const auto& [key, count] : requests_) {
            const auto& [route, method, status] = key;
            out << "sluice_http_requests_total{route=\"" << escape_label_value(route)
                << "\",method=\"" << escape_label_value(method) << "\",status=\"" << status
                << "\"} " << count << "\n";
        }
        out << "# HELP sluice_http_request_duration_seconds Time from request line to response "
               "written.\n"
            << "# TYPE sluice_http_request_duration_seconds histogram\n";
        for (const auto& [key, histogram] : latency_) {
            std::string labels = "route=\"" + escape_label_value(key.first) + "\",method=\"" +
                                 escape_label_value(key.second) + "\"";
            for (std::size_t i = 0; i < kLatencyBuckets.size(); ++i) {
                out << "sluice_http_request_duration_seconds_bucket{" << labels << ",le=\""
                    << bucket_label(kLatencyBuckets[i]) << "\"} " << histogram.buckets[i] << "\n";
            }
            out << "sluice_http_request_duration_seconds_bucket{" << labels << ",le=\"+Inf\"} "
                << histogram.count << "\n"
                << "sluice_http_request_duration_seconds_sum{" << labels << "} "
                << number(histogram.sum) << "\n"
                << "sluice_http_request_duration_seconds_count{" << labels << "} "
                << histogram.count << "\n";
        }
        out << "# HELP sluice_http_requests_in_flight Requests being handled now.\n"
            << "# TYPE sluice_http_requests_in_flight gauge\n"
            << "sluice_http_requests_in_flight " << in_flight_ << "\n";
    }
    auto [rss, vsz] = process_memory();
    out << "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
        << "# TYPE process_resident_memory_bytes gauge\n"
        << "process_resident_memory_bytes " << number(rss) << "\n"
        << "# HELP process_virtual_memory_bytes Virtual memory size in bytes.\n"
        << "# TYPE process_virtual_memory_bytes gauge\n"
        << "process_virtual_memory_bytes " << number(vsz) << "\n"
        << "# HELP process_cpu_seconds_total Total user and system CPU time in seconds.\n"
        << "# TYPE process_cpu_seconds_total counter\n"
        << "process_cpu_seconds_total " << number(process_cpu_seconds()) << "\n"
        << "# HELP process_open_fds Number of open file descriptors.\n"
        << "# TYPE process_open_fds gauge\n"
        << "process_open_fds " << open_file_descriptors() << "\n"
        << "# HELP process_start_time_seconds Start time of the process since the epoch.\n"
        << "# TYPE process_start_time_seconds gauge\n"
        << "process_start_time_seconds " << number(start_time_seconds_) << "\n";
    std::vector<std::function<std::string()>> collectors;
    {
        std::lock_guard lock(mutex_);
        collectors = collectors_;
    }
    for (const auto& collector : collectors) {
        out << collector();
    }
    return out.str();
}

}  // namespace sluice::app
