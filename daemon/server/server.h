#pragma once

#include <sys/types.h>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "metrics/daemon_metrics.h"
#include "server/peer_access.h"
#include "server/services.h"
#include "server/unix_listener.h"

namespace coordd::server {

// PEM files for TCP listeners.
struct TlsFiles {
  std::string cert;
  std::string key;
  std::string client_ca;  // non-empty: clients must present a certificate it signed
};

struct ServerOptions {
  std::vector<std::string> listen;  // unix:/path or host:port
  UnixSocketOptions unix_socket;
  TlsFiles tls;
  AccessPolicy access;
  AdminOptions admin;
  // host:port of a plaintext listener serving only grpc.health.v1.Health
  // (for kubelet's gRPC probes, which cannot do TLS); empty: none.
  std::string health_listen;
  std::shared_ptr<metrics::DaemonMetrics> metrics = std::make_shared<metrics::DaemonMetrics>();
};

// The gRPC server: the coordd services, health checking and reflection.
// Unix sockets are accepted by coordd itself (for the peers' credentials);
// TCP is served over TLS only.
class Server {
 public:
  // Binds every address. A Unix socket file left by a dead daemon is
  // replaced; one a live daemon answers on is an error.
  static absl::StatusOr<std::unique_ptr<Server>> start(const ServerOptions& options, core::Core& core,
                                                       backend::Backend& backend);
  ~Server();

  // The addresses served, TCP ports as bound (":0" asks for any free port).
  const std::vector<std::string>& addresses() const { return addresses_; }
  // SERVING / NOT_SERVING for grpc.health.v1.Health, on every listener. Any
  // thread; nothing once shutdown() has begun.
  void setServing(bool serving);
  // Stops accepting and waits for calls in flight up to `deadline`, then
  // cancels the rest. Once; later calls do nothing.
  void shutdown(absl::Duration deadline);

 private:
  Server(core::Core& core, backend::Backend& backend, const ServerOptions& options);

  PeerAccess access_;
  SessionsService sessions_;
  LocksService locks_;
  ElectionsService elections_;
  AdminService admin_;
  std::vector<std::string> addresses_;
  std::vector<std::unique_ptr<UnixListener>> unix_listeners_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<grpc::Server> health_server_;
  std::mutex serving_mu_;  // setServing() against shutdown()
  bool stopped_ ABSL_GUARDED_BY(serving_mu_) = false;
};

}  // namespace coordd::server
