#pragma once

#include <sys/types.h>

#include <map>
#include <optional>
#include <mutex>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"

namespace coordd::server {

// Who is at the other end of a Unix socket connection (SO_PEERCRED).
struct PeerCredentials {
  pid_t pid = 0;
  uid_t uid = 0;
  std::vector<gid_t> gids;  // primary and supplementary
};

struct AccessPolicy {
  // Unix socket peers allowed to call the API; both empty: anyone who can
  // open the socket.
  std::vector<uid_t> api_uids;
  std::vector<gid_t> api_gids;
  // Unix socket peers allowed to call Admin; both empty: as for the API.
  std::vector<uid_t> admin_uids;
  std::vector<gid_t> admin_gids;
  // TCP peers (IP addresses) allowed to call Admin. Any TCP peer that passed
  // TLS may call the API.
  std::vector<std::string> admin_tcp_peers;
};

// Decides who may call what. coordd accepts Unix socket connections itself
// and records each peer's credentials here under the name gRPC gives the
// connection ("fd:<n>"); every call is checked against them.
class PeerAccess {
 public:
  enum class Scope { kApi, kAdmin };

  explicit PeerAccess(AccessPolicy policy) : policy_(std::move(policy)) {}

  // A Unix socket connection was accepted on `fd`.
  void connected(int fd, PeerCredentials peer);
  // OK, or PERMISSION_DENIED naming the peer and the setting (and logged,
  // with the peer's uid and pid).
  absl::Status check(const grpc::CallbackServerContext& context, Scope scope) const;
  // The credentials of the call's Unix socket peer; nullopt for TCP peers.
  std::optional<PeerCredentials> peerOf(const grpc::CallbackServerContext& context) const;

 private:
  bool allowed(const PeerCredentials& peer, Scope scope) const;

  const AccessPolicy policy_;
  mutable std::mutex mu_;
  std::map<int, PeerCredentials> by_fd_ ABSL_GUARDED_BY(mu_);
};

// The reactor of a streaming call refused before it started: finishes with
// `status`.
template <typename Reactor>
class Refused final : public Reactor {
 public:
  explicit Refused(const grpc::Status& status) { this->Finish(status); }
  void OnDone() override { delete this; }
};

}  // namespace coordd::server
