#include "server/call_metrics.h"

#include <chrono>
#include <string>

#include "absl/status/status.h"

namespace coordd::server {
namespace {

class CallMetrics : public grpc::experimental::Interceptor {
 public:
  CallMetrics(std::string method, metrics::DaemonMetrics& metrics)
      : method_(std::move(method)), metrics_(metrics), started_(std::chrono::steady_clock::now()) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(grpc::experimental::InterceptionHookPoints::PRE_SEND_STATUS)) {
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
      const auto code = static_cast<absl::StatusCode>(methods->GetSendStatus().error_code());
      metrics_.grpc_calls.with({method_, absl::StatusCodeToString(code)}).inc();
      metrics_.grpc_latency.with({method_}).observe(seconds);
    }
    methods->Proceed();
  }

 private:
  const std::string method_;
  metrics::DaemonMetrics& metrics_;
  const std::chrono::steady_clock::time_point started_;
};

}  // namespace

grpc::experimental::Interceptor* CallMetricsFactory::CreateServerInterceptor(grpc::experimental::ServerRpcInfo* info) {
  return new CallMetrics(info->method() != nullptr ? info->method() : "unknown", *metrics_);
}

}  // namespace coordd::server
