#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "server/services.h"

namespace coordd::server {

struct ServerOptions {
  std::vector<std::string> listen;  // unix:/path or host:port
  mode_t socket_mode = 0660;
  AdminOptions admin;
};

// The gRPC server: the coordd services, health checking and reflection.
class Server {
 public:
  // Binds every address. A Unix socket file left by a dead daemon is
  // replaced; one a live daemon answers on is an error.
  static absl::StatusOr<std::unique_ptr<Server>> start(const ServerOptions& options, core::Core& core,
                                                       backend::Backend& backend);
  ~Server();

  // The addresses served, TCP ports as bound (":0" asks for any free port).
  const std::vector<std::string>& addresses() const { return addresses_; }
  // SERVING / NOT_SERVING for grpc.health.v1.Health.
  void setServing(bool serving);
  // Stops accepting and waits for calls in flight up to `deadline`, then
  // cancels the rest.
  void shutdown(absl::Duration deadline);

 private:
  Server(core::Core& core, backend::Backend& backend, const ServerOptions& options);

  SessionsService sessions_;
  LocksService locks_;
  ElectionsService elections_;
  AdminService admin_;
  std::vector<std::string> addresses_;
  std::vector<std::string> socket_paths_;
  std::unique_ptr<grpc::Server> server_;
};

}  // namespace coordd::server
