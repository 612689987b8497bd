#pragma once

#include <memory>
#include <string>
#include <vector>

#include "coordd/client.h"
#include "lock_driver.h"

namespace coordd::bench {

// Lock cycles through coordd with its C++ client library: Session::tryLock
// (Locks.TryAcquire) and LockGuard::release (Locks.Release).
//
// NOTE: every client has its own session, as separate processes would, but
// all sessions share one coordd::Client, i.e. one gRPC channel (one
// connection to the socket), as the threads of one process would. etcd's
// driver does the same, and the ZooKeeper driver shares one ZooKeeper
// session, so every system gets one connection.
class CoorddLockDriver : public LockDriver {
 public:
  // `address`: the daemon's socket, "unix:/path".
  explicit CoorddLockDriver(const std::string& address);

  void prepare(int clients) override;
  absl::Status cycle(int client) override;

 private:
  std::unique_ptr<Client> client_;
  std::vector<std::unique_ptr<Session>> sessions_;
  std::vector<std::string> names_;
};

}  // namespace coordd::bench
