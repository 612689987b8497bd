#pragma once

#include <memory>
#include <string>

#include "absl/time/time.h"
#include "backend/backend.h"
#include "metrics/daemon_metrics.h"

namespace coordd::backend::zookeeper {

struct ZookeeperOptions {
  // "host:port[,host:port...][/chroot]".
  std::string ensemble = "localhost:2181/replicante";
  absl::Duration session_timeout = absl::Seconds(10);
  // The cleaner of empty parents: how often its primary passes, and how many
  // it deletes per pass at most.
  absl::Duration cleaner_interval = absl::Seconds(60);
  int64_t cleaner_limit = 100;
  // Digest credentials "user:password"; empty: none.
  std::string digest;
  // Create nodes that only the same credentials may change (ZooKeeper's
  // creator ACL) instead of open ones. Needs `digest`.
  bool creator_acl = false;
  std::shared_ptr<metrics::DaemonMetrics> metrics = std::make_shared<metrics::DaemonMetrics>();
};

// The coordinator on a ZooKeeper ensemble: the recipes (KeeperBackend) on
// sessions of the ZooKeeper C client, with open ACLs (world:anyone) unless
// creator_acl.
std::unique_ptr<Backend> makeZookeeperBackend(const ZookeeperOptions& options);

}  // namespace coordd::backend::zookeeper
