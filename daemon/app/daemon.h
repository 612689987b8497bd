#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "backend/backend.h"
#include "config/config.h"
#include "core/core.h"
#include "metrics/daemon_metrics.h"
#include "metrics/http_server.h"
#include "server/server.h"

namespace coordd::app {

// One coordd: the engine its configuration names (ZooKeeper, or the embedded
// coordinator when none is), the core, the gRPC listeners and the HTTP
// listener for /metrics and the probes. Started in that order and stopped in
// the reverse one, whichever way it ends.
class Daemon {
 public:
  // Starts everything; an error names the setting at fault (e.g. a taken
  // http.listen) and leaves nothing running or bound.
  static absl::StatusOr<std::unique_ptr<Daemon>> start(const config::Config& config);
  // Stops without a drain if shutdown() was not called.
  ~Daemon();
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  // The gRPC addresses served, TCP ports as bound.
  const std::vector<std::string>& addresses() const { return server_->addresses(); }
  // The HTTP listener's address as bound; empty when there is none.
  std::string httpAddress() const { return http_ ? http_->address() : std::string(); }

  // Graceful: refuses new work, ends every session (their holds released in
  // the coordinator) and waits for that up to the configured
  // shutdown_timeout, then stops the listeners and the engine. Once; later
  // calls do nothing.
  void shutdown();

 private:
  explicit Daemon(const config::Config& config);
  absl::Status startListeners();
  // Stops the server before the engine, whose thread answers its calls.
  void stop(absl::Duration drain);

  const config::Config config_;
  const std::string node_id_;
  std::shared_ptr<metrics::DaemonMetrics> metrics_;
  std::unique_ptr<backend::Backend> backend_;
  // The core reports readiness from the engine's thread, also before the
  // server exists.
  std::atomic<server::Server*> serving_{nullptr};
  std::unique_ptr<core::Core> core_;
  std::unique_ptr<server::Server> server_;
  std::unique_ptr<metrics::HttpServer> http_;
  bool stopped_ = false;
};

}  // namespace coordd::app
