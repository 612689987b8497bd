#pragma once

// Clients of coordd's observability endpoints, as a monitoring system or
// kubelet would use them: HTTP through curl, gRPC health checks.

#include <optional>
#include <string>
#include <vector>

#include "harness.h"

namespace coordd::e2e {

// coordd flags for both observability listeners on free local ports.
std::vector<std::string> observabilityFlags();

// Where a daemon started with observabilityFlags() serves them, from its
// log; empty fields if it does not say within a few seconds.
struct ObservabilityEndpoints {
  std::string http;    // host:port of /metrics, /healthz, /readyz
  std::string health;  // host:port of the plaintext gRPC health service
};
ObservabilityEndpoints observabilityEndpoints(const Daemon& daemon);

struct HttpResult {
  int code = 0;  // 0: no answer
  std::string body;
};
// GET http://<address><path> with curl.
HttpResult httpGet(const std::string& address, const std::string& path);

// grpc.health.v1.Health/Check of service "" over plaintext TCP: "SERVING",
// "NOT_SERVING", or the call's error.
std::string grpcHealth(const std::string& address);

// The value of one series in Prometheus text, written as rendered:
// `coordd_locks_held` or `coordd_lock_acquires_total{mode="try",outcome="held"}`.
std::optional<double> metricValue(const std::string& text, const std::string& series);

// One series from a scrape of http://<http>/metrics; nullopt if the scrape
// fails or the series is absent.
std::optional<double> scrape(const std::string& http, const std::string& series);

}  // namespace coordd::e2e
