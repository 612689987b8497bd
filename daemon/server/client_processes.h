#pragma once

#include <sys/types.h>

#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "core/types.h"
#include "server/peer_access.h"

namespace coordd::server {

class Pidfd;

// Watches the processes of clients on the Unix socket by pidfd, so that a
// broken KeepAlive stream ends a session at once only when they are all
// provably gone.
//
// NOTE: one pidfd per process, shared by all of its sessions; a pid that
// already names no process counts as exited. A pidfd stays valid across pid
// reuse, so a new process with an old pid gets a pidfd of its own.
class ClientProcessTable {
 public:
  // The processes of a client that connected as `peer`, says its pid is
  // `client_pid` and names `guard_pids`. nullptr (not watchable) unless the
  // peer is visible in this pid namespace and is `client_pid` itself (so the
  // guard pids are in this namespace too), and every pidfd could be opened.
  std::shared_ptr<const core::ClientProcesses> watch(const PeerCredentials& peer, pid_t client_pid,
                                                     const std::vector<pid_t>& guard_pids);

 private:
  // The pidfd of `pid`, shared while anyone holds it; nullptr on failure.
  std::shared_ptr<const Pidfd> open(pid_t pid) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  std::mutex mu_;
  std::map<pid_t, std::weak_ptr<const Pidfd>> open_ ABSL_GUARDED_BY(mu_);
};

}  // namespace coordd::server
