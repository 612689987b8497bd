#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "backend/keeper/keeper.h"

namespace coordd::backend::keeper {

// ZooKeeper's data model and session semantics in process memory: the
// ensemble of the embedded coordinator, of the core's tests and of the
// simulation.
//
// As on ZooKeeper: one zxid counter orders every change (czxid, mzxid);
// sequential names come from the parent's child-change counter; ephemeral
// nodes go with their session; watches are one-shot, and a watch fires
// before the answer of any later request of the watching session. While a
// session is disconnected its calls fail kConnectionLoss and its watches are
// off the server; once connected again (after kConnected) they are restored
// as ZooKeeper's SetWatches does, against the last zxid the session saw: a
// data watch fires kDeleted if its node is gone and kChanged if it changed
// (a node deleted and created anew by someone else included), an exists
// watch on an absent node kCreated if it is there now, a child watch kDeleted
// or kChild; the others are set again. An expired session learns of its
// expiry once connected. A session closed while disconnected keeps its nodes
// until it expires.
//
// NOTE: simplifying assumptions.
// * A request is applied when it is made, and its answer is queued at once:
//   nothing of a session is ever in flight. Lost answers, delays and
//   foreign writes are the fault-injecting decorator's (FaultyKeeper).
// * Containers are kept like persistent nodes; the cleaner removes them.
// * No ACLs, quotas or size limits.
class MemoryKeeper : public std::enable_shared_from_this<MemoryKeeper> {
 public:
  explicit MemoryKeeper(int64_t session_timeout_ms = 10000);

  // A factory of sessions on this keeper; it keeps the keeper.
  KeeperFactory factory();
  std::unique_ptr<Keeper> open(Keeper::Post post, Keeper::SessionWatch on_session);

  // Faults, by session id. disconnect: kConnecting, calls fail until
  // reconnect. reconnect: kConnected, or kExpired if it expired meanwhile.
  // expire: its ephemeral nodes go now; it hears kExpired once connected.
  void disconnect(int64_t session);
  void reconnect(int64_t session);
  void expire(int64_t session);
  // Closed by its client while disconnected: it lasts until expire().
  bool abandoned(int64_t session) const;
  // How many watches the session has set that have not fired.
  size_t watchCount(int64_t session) const;

  // The node at `path` (for checkers); nullopt when absent.
  std::optional<Result> peek(const std::string& path) const;
  // Told of each node a session deletes, as it goes (not of the ephemerals
  // that go with their session), under the keeper's lock: it must not call
  // the keeper. For checkers.
  using Removed = std::function<void(int64_t session, const std::string& path, const Stat& stat)>;
  void onRemoved(Removed removed);

 private:
  class Session;
  struct Node {
    std::string data;
    Stat stat;
    int32_t cversion = 0;  // child changes: the next sequence number
    int64_t pzxid = 0;     // the zxid of the last child change
    std::set<std::string> children;
  };
  struct Watcher {
    int64_t session = 0;
    Keeper::Watch watch;
    bool on_absent = false;  // an exists watch set on an absent node
  };
  struct SessionEntry {
    Keeper::Post post;
    Keeper::SessionWatch on_session;
    bool connected = true;
    bool expired = false;
    bool abandoned = false;
    std::set<std::string> ephemerals;
    // Its watches while disconnected, and the zxid when it lost contact (all
    // it saw: answers are never in flight here).
    std::vector<std::pair<std::string, Watcher>> detached_data;
    std::vector<std::pair<std::string, Watcher>> detached_children;
    int64_t seen_zxid = 0;
  };

  // Runs a request of `session`: its answer goes to the session.
  void call(int64_t session, Keeper::Done done, const std::function<Result()>& apply);
  Result create(int64_t session, const std::string& path, const std::string& data, CreateMode mode)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Result get(const std::string& path) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Result exists(int64_t session, const std::string& path, Keeper::Watch watch) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Result children(int64_t session, const std::string& path, Keeper::Watch watch) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Result remove(int64_t session, const std::string& path, int32_t version) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void removeNode(const std::string& path) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Result setData(const std::string& path, const std::string& data, int32_t version) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Result multi(int64_t session, const std::vector<Op>& ops) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The zxid of the next change: a new one, or the transaction's.
  int64_t nextZxid() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void fire(std::multimap<std::string, Watcher>& watches, const std::string& path, WatchEvent event)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Restores the watches of a session connected again (SetWatches).
  void restoreWatches(SessionEntry& entry) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void endSession(int64_t session) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void forgetWatches(int64_t session) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void closed(int64_t session);

  const int64_t session_timeout_ms_;
  mutable std::mutex mu_;
  int64_t zxid_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t next_session_ ABSL_GUARDED_BY(mu_) = 0x1000;
  std::map<std::string, Node> nodes_ ABSL_GUARDED_BY(mu_);
  std::map<int64_t, SessionEntry> sessions_ ABSL_GUARDED_BY(mu_);
  std::multimap<std::string, Watcher> data_watches_ ABSL_GUARDED_BY(mu_);   // exists, get
  std::multimap<std::string, Watcher> child_watches_ ABSL_GUARDED_BY(mu_);  // children
  Removed removed_ ABSL_GUARDED_BY(mu_);
  // A multi being applied: what it changed (to undo it if an op fails), and
  // what it tells once all its ops applied.
  struct Transaction {
    int64_t zxid = 0;
    std::map<std::string, std::optional<Node>> before;  // each path as it was
    std::vector<std::function<void()>> on_commit;       // watches to fire, deletes to tell
  };
  Transaction* txn_ ABSL_GUARDED_BY(mu_) = nullptr;
};

}  // namespace coordd::backend::keeper
