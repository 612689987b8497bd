#pragma once

#include <memory>

#include <grpcpp/support/server_interceptor.h>

#include "metrics/daemon_metrics.h"

namespace coordd::server {

// Counts every call by method and status code, and times it from its start
// to its status (a stream's whole life), into grpc_calls and grpc_latency.
class CallMetricsFactory : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit CallMetricsFactory(std::shared_ptr<metrics::DaemonMetrics> metrics) : metrics_(std::move(metrics)) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(grpc::experimental::ServerRpcInfo* info) override;

 private:
  const std::shared_ptr<metrics::DaemonMetrics> metrics_;
};

}  // namespace coordd::server
