#pragma once

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "server/peer_access.h"

namespace coordd::server {

struct UnixSocketOptions {
  mode_t mode = 0660;
  std::optional<uid_t> owner;
  std::optional<gid_t> group;
};

// A Unix socket that coordd accepts on itself, so that it learns each peer's
// credentials, then hands the connection to gRPC.
class UnixListener {
 public:
  // Binds `path` with the given mode and ownership. A socket file left by a
  // dead daemon is replaced; one a live daemon answers on is an error.
  static absl::StatusOr<std::unique_ptr<UnixListener>> bind(const std::string& path, const UnixSocketOptions& options);
  // Stops accepting and removes the socket file.
  ~UnixListener();
  UnixListener(const UnixListener&) = delete;
  UnixListener& operator=(const UnixListener&) = delete;

  // Accepts connections on a thread of its own, records their peers in
  // `access`, and serves them with `server`. Both must outlive the listener.
  void serve(grpc::Server& server, PeerAccess& access);

 private:
  UnixListener(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  void acceptLoop(grpc::Server& server, PeerAccess& access);

  const std::string path_;
  int fd_ = -1;
  std::thread thread_;
};

}  // namespace coordd::server
