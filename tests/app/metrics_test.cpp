#include "app/metrics.h"

#include <doctest/doctest.h>

#include "app/build_info.h"

using namespace sluice::app;

TEST_CASE("histograms are cumulative and carry sum and count") {
    Metrics metrics(build_info());
    metrics.observe_request("/x", "GET", 200, 0.003);
    metrics.observe_request("/x", "GET", 200, 0.2);
    metrics.observe_request("/x", "GET", 500, 100.0);
    std::string text = metrics.render();
    CHECK(text.find("sluice_http_request_duration_seconds_bucket{route=\"/x\",method=\"GET\","
                    "le=\"0.001\"} 0") != std::string::npos);
    CHECK(text.find("le=\"0.005\"} 1") != std::string::npos);
    CHECK(text.find("le=\"0.25\"} 2") != std::string::npos);
    CHECK(text.find("le=\"60\"} 2") != std::string::npos);
    CHECK(text.find("le=\"+Inf\"} 3") != std::string::npos);
    CHECK(text.find("sluice_http_request_duration_seconds_count{route=\"/x\",method=\"GET\"} 3") !=
          std::string::npos);
    CHECK(text.find("status=\"500\"} 1") != std::string::npos);
    CHECK(text.find("# TYPE process_cpu_seconds_total counter") != std::string::npos);
}

TEST_CASE("label values are escaped") {
    CHECK(escape_label_value("a\"b\\c\nd") == "a\\\"b\\\\c\\nd");
}
