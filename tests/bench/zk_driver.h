#pragma once

#include <zookeeper/zookeeper.h>

#include <condition_variable>
#include <mutex>
#include <string>
#include <vector>

#include "lock_driver.h"

namespace coordd::bench {

// Lock cycles with the ZooKeeper C client directly (libzookeeper-mt, its
// synchronous API), the recipe coordd uses for a non-blocking lock and the
// one BASELINES.md measured: create the lock's ephemeral node, then delete
// it.
//
// NOTE: all clients share ONE ZooKeeper session (one zhandle, one TCP
// connection), as the threads of one process would, and as coordd's daemon
// does for all its clients. Lock nodes are flat under one parent and carry a
// payload the size of coordd's owner record, so the server does comparable
// work per node; they do not follow coordd's hashed layout, which a user of
// the plain client would not write.
class ZkDirectLockDriver : public TryLockDriver {
 public:
  // `address`: "host:port" of a ZooKeeper server. Connects and waits for the
  // session; throws if there is none within 10 s.
  explicit ZkDirectLockDriver(const std::string& address);
  ~ZkDirectLockDriver() override;

  void prepare(int clients) override;
  absl::Status cycle(int client) override;
  // Create the shared lock's node; NODEEXISTS: held by another client.
  absl::StatusOr<bool> attempt(int client, int lock) override;

 private:
  static void onEvent(zhandle_t* zh, int type, int state, const char* path, void* context);

  zhandle_t* zh_ = nullptr;
  std::mutex mu_;
  std::condition_variable changed_;
  int state_ = 0;  // guarded by mu_; ZOO_CONNECTED_STATE once connected
  std::vector<std::string> paths_;
  std::string payload_;
};

}  // namespace coordd::bench
