// The Prometheus text format as a scraper parses it: escaped label values,
// cumulative histogram buckets ending in +Inf, gauges read at render time.
#include <catch2/catch.hpp>

#include "metrics/registry.h"

using coordd::metrics::Registry;

TEST_CASE("metrics text format - counters with escaped labels, cumulative buckets, gauges read when rendered",
          "[metrics]") {
  Registry registry;
  auto& calls = registry.counter("calls_total", "Calls.", {"method"});
  calls.with({"a\"b\\c\nd"}).inc(3);
  auto& latency = registry.histogram("latency_seconds", "Latency.", {}, {0.5, 1});
  latency.with({}).observe(0.25);
  latency.with({}).observe(0.5);  // on a bound: counted in that bucket
  latency.with({}).observe(4);
  int reads = 0;
  registry.gauge("open", "Open things.", {"kind"}, [&reads] {
    ++reads;
    return std::vector<std::pair<coordd::metrics::Labels, double>>{{{"x"}, 2.5}};
  });
  CHECK(reads == 0);

  const std::string text = registry.render();
  CHECK(reads == 1);
  CHECK(text.find("# HELP calls_total Calls.\n# TYPE calls_total counter\n") != std::string::npos);
  CHECK(text.find("calls_total{method=\"a\\\"b\\\\c\\nd\"} 3\n") != std::string::npos);
  CHECK(text.find("latency_seconds_bucket{le=\"0.5\"} 2\n") != std::string::npos);
  CHECK(text.find("latency_seconds_bucket{le=\"1\"} 2\n") != std::string::npos);
  CHECK(text.find("latency_seconds_bucket{le=\"+Inf\"} 3\n") != std::string::npos);
  CHECK(text.find("latency_seconds_sum 4.75\n") != std::string::npos);
  CHECK(text.find("latency_seconds_count 3\n") != std::string::npos);
  CHECK(text.find("# TYPE open gauge\nopen{kind=\"x\"} 2.5\n") != std::string::npos);
}
