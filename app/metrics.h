#pragma once
// Server metrics in the Prometheus text exposition format (version 0.0.4): HTTP requests by
// route, method and status; request latency histograms by route and method; build info; and the
// process's memory, CPU time, open files and start time read from /proc.
//
// Routes are the registered patterns ("/v1/chat/completions"), never raw paths, so that the
// number of series stays bounded; requests that match no route count as route="unmatched".
//
// Thread safety: thread-safe.

#include <array>
#include <cstdint>
#include <functional>
#include <vector>
#include <map>
#include <mutex>
#include <string>
#include <tuple>

namespace sluice::app {

struct BuildInfo;

class Metrics {
public:
    // Upper bounds of the latency histogram buckets, in seconds (+Inf is implied).
    static constexpr std::array<double, 14> kLatencyBuckets = {
        0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};

    explicit Metrics(const BuildInfo& build);

    void observe_request(const std::string& route, const std::string& method, int status,
                         double seconds);
    void set_in_flight(int delta);

    // Adds a source of further metrics (already in the exposition format), rendered after the
    // server's own. Register before serving; the collector must be thread-safe.
    void add_collector(std::function<std::string()> collector);

    // The whole exposition, ending with a newline.
    std::string render() const;

private:
    struct Histogram {
        std::array<std::uint64_t, kLatencyBuckets.size()> buckets{};
        std::uint64_t count = 0;
        double sum = 0;
    };

    std::string build_labels_;
    double start_time_seconds_;

    mutable std::mutex mutex_;
    std::map<std::tuple<std::string, std::string, int>, std::uint64_t> requests_;  // guarded
    std::map<std::pair<std::string, std::string>, Histogram> latency_;            // guarded
    std::int64_t in_flight_ = 0;                                                    // guarded
    std::vector<std::function<std::string()>> collectors_;                          // guarded
};

// Escapes a Prometheus label value (backslash, quote, newline).
std::string escape_label_value(const std::string& value);

}  // namespace sluice::app
