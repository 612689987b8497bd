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
#include "metrics/daemon_metrics.h"

namespace coordd::backend::zookeeper {

// What a ZooKeeper call returned.
struct ZkResult {
  int rc = ZOK;
  std::string path;  // create: the node created (sequential suffix included)
  std::string data;  // get
  Stat stat{};       // create, get, exists, children
  std::vector<std::string> children;
};

// One ZooKeeper session through the C client's asynchronous API.
//
// Threading: calls may be made from any thread and never block. Completions
// and watches come on the C client's completion thread and are handed to
// `post` at once (never run there), so they run wherever `post` runs them.
// Every completion runs exactly once: with the server's answer, or with the
// error code if the call could not be issued, or with ZCLOSING when the
// session is closed first.
class ZkClient {
 public:
  using Post = std::function<void(std::function<void()>)>;
  using Done = std::function<void(const ZkResult&)>;
  // A one-shot node watch: the event type (ZOO_DELETED_EVENT, ...).
  using Watch = std::function<void(int type)>;
  // Session state changes (ZOO_CONNECTED_STATE, ...).
  using SessionWatch = std::function<void(int state)>;

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
  ~ZkClient();

  void create(const std::string& path, const std::string& data, int flags, Done done);
  void get(const std::string& path, Done done);
  void exists(const std::string& path, Watch watch, Done done);
  void children(const std::string& path, Watch watch, Done done);
  void remove(const std::string& path, int version, Done done);
  // Flushes the channel between the server and the leader: its answer means
  // the ensemble's leader saw this session alive after the call was made.
  void sync(const std::string& path, Done done);

  int64_t sessionId() const;
  int negotiatedTimeoutMs() const;
  std::string server() const;

  // One call in flight, owned by the C client until it completes.
  struct Call;

 private:
  struct WatchEntry;
  ZkClient(Post post, SessionWatch on_session, std::shared_ptr<metrics::DaemonMetrics> metrics);
  Call* newCall(metrics::Histogram& latency, Done done);
  // Completes a call that could not be issued.
  void failed(Call* call, int rc);
  WatchEntry* newWatch(Watch watch);
  // Forgets a watch whose call was never issued.
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
  ACL_vector* acl_ = &ZOO_OPEN_ACL_UNSAFE;
  zhandle_t* zh_ = nullptr;
  // Watches not fired yet, freed with the client (a watch of a closed
  // session never fires).
  std::mutex mu_;
  std::map<WatchEntry*, std::unique_ptr<WatchEntry>> watches_ ABSL_GUARDED_BY(mu_);
};

// The one table from ZooKeeper codes to Status.
absl::Status zkStatus(int rc, const std::string& what);

}  // namespace coordd::backend::zookeeper
