#pragma once

#include <zookeeper/zookeeper.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "backend/keeper/keeper.h"
#include "metrics/daemon_metrics.h"

namespace coordd::backend::zookeeper {

// One ZooKeeper session through the C client's asynchronous API.
// Completions and watches come on the C client's completion thread and are
// handed to `post` at once (never run there).
class ZkClient : public keeper::Keeper {
 public:
  struct Options {
    std::string hosts;  // "h1:2181,h2:2181", no chroot
    int timeout_ms = 10000;
    std::string digest;        // "user:password", or empty for none
    bool creator_acl = false;  // nodes only their creator may touch
    // Each call's latency goes to coordinator_ops, by operation.
    std::shared_ptr<metrics::DaemonMetrics> metrics;
  };
  // Connects in the background.
  static absl::StatusOr<std::unique_ptr<ZkClient>> connect(const Options& options, Post post, SessionWatch on_session);
  // Closes the session: its ephemeral nodes go at once.
  ~ZkClient() override;

  void create(const std::string& path, const std::string& data, keeper::CreateMode mode, Done done) override;
  void get(const std::string& path, Done done) override;
  void exists(const std::string& path, Watch watch, Done done) override;
  void children(const std::string& path, Watch watch, Done done) override;
  void remove(const std::string& path, int32_t version, Done done) override;
  // Flushes the channel between the server and the leader.
  void sync(const std::string& path, Done done) override;
  void multi(std::vector<keeper::Op> ops, Done done) override;

  int64_t sessionId() const override;
  int64_t negotiatedTimeoutMs() const override;
  std::string server() const override;

  // Watches set and not fired yet (those the server never set are not kept).
  size_t watchesPending() const;

  // One call in flight, owned by the C client until it completes.
  struct Call;
  // A multi in flight, and where the C client writes its results.
  struct Multi;

 private:
  struct WatchEntry;
  ZkClient(Post post, SessionWatch on_session, std::shared_ptr<metrics::DaemonMetrics> metrics);
  Call* newCall(metrics::Histogram& latency, Done done);
  // Completes a call that could not be issued.
  void failed(Call* call, int rc);
  WatchEntry* newWatch(Watch watch);
  // Forgets a watch that will never fire: its call failed.
  void dropWatch(WatchEntry* entry);

  static void onSession(zhandle_t*, int type, int state, const char*, void* context);
  static void onWatch(zhandle_t*, int type, int state, const char*, void* context);

  const Post post_;
  const SessionWatch on_session_;
  const std::shared_ptr<metrics::DaemonMetrics> metrics_;
  metrics::Histogram& create_latency_;
  metrics::Histogram& get_latency_;
  metrics::Histogram& exists_latency_;
  metrics::Histogram& children_latency_;
  metrics::Histogram& delete_latency_;
  metrics::Histogram& sync_latency_;
  metrics::Histogram& multi_latency_;
  ACL_vector* acl_ = &ZOO_OPEN_ACL_UNSAFE;
  zhandle_t* zh_ = nullptr;
  // Watches not fired yet, freed with the client (a watch of a closed
  // session never fires).
  mutable std::mutex mu_;
  std::map<WatchEntry*, std::unique_ptr<WatchEntry>> watches_ ABSL_GUARDED_BY(mu_);
};

// A ZooKeeper return code as a keeper code.
keeper::Code zkCode(int rc);

}  // namespace coordd::backend::zookeeper
