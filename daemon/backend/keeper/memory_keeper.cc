#include "backend/keeper/memory_keeper.h"

#include <algorithm>

#include "absl/strings/str_format.h"

namespace coordd::backend::keeper {
namespace {

std::string parentOf(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == 0 ? "/" : path.substr(0, slash);
}

std::string baseOf(const std::string& path) { return path.substr(path.rfind('/') + 1); }

bool validPath(const std::string& path) {
  if (path.empty() || path[0] != '/') return false;
  if (path == "/") return true;
  return path.back() != '/' && path.find("//") == std::string::npos;
}

Result failure(Code code) {
  Result result;
  result.code = code;
  return result;
}

}  // namespace

class MemoryKeeper::Session : public Keeper {
 public:
  Session(std::shared_ptr<MemoryKeeper> keeper, int64_t id) : keeper_(std::move(keeper)), id_(id) {}
  ~Session() override { keeper_->closed(id_); }

  void create(const std::string& path, const std::string& data, CreateMode mode, Done done) override {
    keeper_->call(id_, std::move(done), [&] { return keeper_->create(id_, path, data, mode); });
  }
  void get(const std::string& path, Done done) override {
    keeper_->call(id_, std::move(done), [&] { return keeper_->get(path); });
  }
  void exists(const std::string& path, Watch watch, Done done) override {
    keeper_->call(id_, std::move(done), [&] { return keeper_->exists(id_, path, std::move(watch)); });
  }
  void children(const std::string& path, Watch watch, Done done) override {
    keeper_->call(id_, std::move(done), [&] { return keeper_->children(id_, path, std::move(watch)); });
  }
  void remove(const std::string& path, int32_t version, Done done) override {
    keeper_->call(id_, std::move(done), [&] { return keeper_->remove(id_, path, version); });
  }
  void sync(const std::string& path, Done done) override {
    keeper_->call(id_, std::move(done), [] { return Result{}; });
  }
  void multi(std::vector<Op> ops, Done done) override {
    keeper_->call(id_, std::move(done), [&] { return keeper_->multi(id_, ops); });
  }
  int64_t sessionId() const override { return id_; }
  int64_t negotiatedTimeoutMs() const override { return keeper_->session_timeout_ms_; }
  std::string server() const override { return "in-process"; }

 private:
  const std::shared_ptr<MemoryKeeper> keeper_;
  const int64_t id_;
};

MemoryKeeper::MemoryKeeper(int64_t session_timeout_ms) : session_timeout_ms_(session_timeout_ms) {
  nodes_["/"] = Node{};
}

KeeperFactory MemoryKeeper::factory() {
  return [keeper = shared_from_this()](Keeper::Post post,
                                       Keeper::SessionWatch on_session) -> absl::StatusOr<std::unique_ptr<Keeper>> {
    return keeper->open(std::move(post), std::move(on_session));
  };
}

std::unique_ptr<Keeper> MemoryKeeper::open(Keeper::Post post, Keeper::SessionWatch on_session) {
  std::lock_guard<std::mutex> lock(mu_);
  const int64_t id = next_session_++;
  SessionEntry& entry = sessions_[id];
  entry.post = std::move(post);
  entry.on_session = std::move(on_session);
  entry.post([on_session = entry.on_session] { on_session(SessionState::kConnected); });
  return std::make_unique<Session>(shared_from_this(), id);
}

void MemoryKeeper::call(int64_t session, Keeper::Done done, const std::function<Result()>& apply) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = sessions_.find(session);
  if (it == sessions_.end()) return;  // closed: nothing answers
  SessionEntry& entry = it->second;
  Result result = entry.expired      ? failure(Code::kSessionExpired)
                  : !entry.connected ? failure(Code::kConnectionLoss)
                                     : apply();
  entry.post([done = std::move(done), result = std::move(result)] { done(result); });
}

Result MemoryKeeper::create(int64_t session, const std::string& path, const std::string& data, CreateMode mode) {
  if (!validPath(path) || path == "/") return failure(Code::kBadArguments);
  auto parent = nodes_.find(parentOf(path));
  if (parent == nodes_.end()) return failure(Code::kNoNode);
  if (parent->second.stat.ephemeral_owner != 0) return failure(Code::kNoChildrenForEphemerals);
  std::string name = path;
  if (mode == CreateMode::kEphemeralSequential) name += absl::StrFormat("%010d", parent->second.cversion);
  if (nodes_.count(name) > 0) return failure(Code::kNodeExists);
  const bool ephemeral = mode == CreateMode::kEphemeral || mode == CreateMode::kEphemeralSequential;
  Node node;
  node.data = data;
  node.stat.czxid = node.stat.mzxid = node.pzxid = nextZxid();
  node.stat.ephemeral_owner = ephemeral ? session : 0;
  parent->second.children.insert(baseOf(name));
  ++parent->second.cversion;
  parent->second.pzxid = node.pzxid;
  parent->second.stat.num_children = static_cast<int32_t>(parent->second.children.size());
  Result result;
  result.path = name;
  result.stat = node.stat;
  nodes_.emplace(name, std::move(node));
  if (ephemeral) sessions_[session].ephemerals.insert(name);
  fire(data_watches_, name, WatchEvent::kCreated);
  fire(child_watches_, parentOf(name), WatchEvent::kChild);
  return result;
}

Result MemoryKeeper::get(const std::string& path) const {
  auto it = nodes_.find(path);
  if (it == nodes_.end()) return failure(Code::kNoNode);
  Result result;
  result.data = it->second.data;
  result.stat = it->second.stat;
  return result;
}

Result MemoryKeeper::exists(int64_t session, const std::string& path, Keeper::Watch watch) {
  if (!validPath(path)) return failure(Code::kBadArguments);
  // As on ZooKeeper, an exists watch is set on a node that is absent too.
  auto it = nodes_.find(path);
  if (watch) data_watches_.emplace(path, Watcher{session, std::move(watch), it == nodes_.end()});
  if (it == nodes_.end()) return failure(Code::kNoNode);
  Result result;
  result.stat = it->second.stat;
  return result;
}

Result MemoryKeeper::children(int64_t session, const std::string& path, Keeper::Watch watch) {
  if (!validPath(path)) return failure(Code::kBadArguments);
  auto it = nodes_.find(path);
  if (it == nodes_.end()) return failure(Code::kNoNode);
  if (watch) child_watches_.emplace(path, Watcher{session, std::move(watch)});
  Result result;
  result.stat = it->second.stat;
  result.children.assign(it->second.children.begin(), it->second.children.end());
  return result;
}

void MemoryKeeper::onRemoved(Removed removed) {
  std::lock_guard<std::mutex> lock(mu_);
  removed_ = std::move(removed);
}

Result MemoryKeeper::remove(int64_t session, const std::string& path, int32_t version) {
  if (!validPath(path) || path == "/") return failure(Code::kBadArguments);
  auto it = nodes_.find(path);
  if (it == nodes_.end()) return failure(Code::kNoNode);
  if (version != -1 && version != it->second.stat.version) return failure(Code::kBadVersion);
  if (!it->second.children.empty()) return failure(Code::kNotEmpty);
  if (removed_) {
    auto tell = [this, session, path, stat = it->second.stat] { removed_(session, path, stat); };
    txn_ != nullptr ? txn_->on_commit.push_back(tell) : tell();
  }
  removeNode(path);
  return Result{};
}

Result MemoryKeeper::setData(const std::string& path, const std::string& data, int32_t version) {
  auto it = nodes_.find(path);
  if (it == nodes_.end()) return failure(Code::kNoNode);
  if (version != -1 && version != it->second.stat.version) return failure(Code::kBadVersion);
  it->second.data = data;
  ++it->second.stat.version;
  it->second.stat.mzxid = nextZxid();
  Result result;
  result.stat = it->second.stat;
  fire(data_watches_, path, WatchEvent::kChanged);
  return result;
}

int64_t MemoryKeeper::nextZxid() { return txn_ != nullptr ? txn_->zxid : ++zxid_; }

Result MemoryKeeper::multi(int64_t session, const std::vector<Op>& ops) {
  // As ZkClient (keeper.h).
  if (std::any_of(ops.begin(), ops.end(), [](const Op& op) { return op.isContainerCreate(); })) {
    return failure(Code::kUnimplemented);
  }
  Transaction txn;
  txn.zxid = zxid_ + 1;
  txn_ = &txn;
  auto save = [&](const std::string& path) {
    if (txn.before.count(path) > 0) return;
    auto it = nodes_.find(path);
    txn.before[path] = it == nodes_.end() ? std::nullopt : std::optional<Node>(it->second);
  };
  Result result;
  std::optional<size_t> failed;
  for (size_t i = 0; i < ops.size() && !failed; ++i) {
    const Op& op = ops[i];
    if (validPath(op.path) && op.path != "/") save(parentOf(op.path));
    if (op.type != Op::Type::kCreate) save(op.path);
    Result r = op.type == Op::Type::kCreate   ? create(session, op.path, op.data, op.mode)
               : op.type == Op::Type::kDelete ? remove(session, op.path, op.version)
                                              : setData(op.path, op.data, op.version);
    if (r.code == Code::kOk && op.type == Op::Type::kCreate) txn.before.emplace(r.path, std::nullopt);
    if (op.type == Op::Type::kCreate) r.stat = Stat{};  // as ZooKeeper's C client: a path only
    if (r.code != Code::kOk) failed = i;
    result.results.push_back(std::move(r));
  }
  txn_ = nullptr;
  if (!failed) {
    zxid_ = txn.zxid;
    for (auto& tell : txn.on_commit) tell();
    return result;
  }
  // Undone: every path as it was, the ephemerals of their sessions with them.
  for (auto& [path, node] : txn.before) {
    if (auto now = nodes_.find(path); now != nodes_.end()) {
      if (auto owner = sessions_.find(now->second.stat.ephemeral_owner); owner != sessions_.end()) {
        owner->second.ephemerals.erase(path);
      }
      nodes_.erase(now);
    }
    if (!node) continue;
    if (auto owner = sessions_.find(node->stat.ephemeral_owner); owner != sessions_.end()) {
      owner->second.ephemerals.insert(path);
    }
    nodes_.emplace(path, std::move(*node));
  }
  result.code = result.results.back().code;
  for (size_t i = 0; i < ops.size(); ++i) {
    if (i >= result.results.size()) result.results.emplace_back();
    if (i != *failed) result.results[i] = failure(Code::kNotApplied);
  }
  return result;
}

void MemoryKeeper::removeNode(const std::string& path) {
  auto it = nodes_.find(path);
  if (it == nodes_.end()) return;
  if (int64_t owner = it->second.stat.ephemeral_owner; owner != 0) {
    if (auto session = sessions_.find(owner); session != sessions_.end()) session->second.ephemerals.erase(path);
  }
  nodes_.erase(it);
  const int64_t zxid = nextZxid();
  Node& parent = nodes_[parentOf(path)];
  parent.children.erase(baseOf(path));
  ++parent.cversion;
  parent.pzxid = zxid;
  parent.stat.num_children = static_cast<int32_t>(parent.children.size());
  fire(data_watches_, path, WatchEvent::kDeleted);
  fire(child_watches_, path, WatchEvent::kDeleted);
  fire(child_watches_, parentOf(path), WatchEvent::kChild);
}

void MemoryKeeper::fire(std::multimap<std::string, Watcher>& watches, const std::string& path, WatchEvent event) {
  if (txn_ != nullptr) {
    // Fired once the whole transaction applied, in order.
    txn_->on_commit.push_back([this, &watches, path, event]()
                                  ABSL_NO_THREAD_SAFETY_ANALYSIS { fire(watches, path, event); });
    return;
  }
  auto [begin, end] = watches.equal_range(path);
  std::vector<Watcher> fired;
  for (auto it = begin; it != end; ++it) fired.push_back(std::move(it->second));
  watches.erase(begin, end);
  for (auto& watcher : fired) {
    // Only a connected session's watches are on the server.
    auto session = sessions_.find(watcher.session);
    if (session == sessions_.end() || session->second.expired) continue;
    session->second.post([watch = std::move(watcher.watch), event] { watch(event); });
  }
}

void MemoryKeeper::disconnect(int64_t session) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = sessions_.find(session);
  if (it == sessions_.end() || !it->second.connected) return;
  SessionEntry& entry = it->second;
  entry.connected = false;
  entry.seen_zxid = zxid_;
  for (auto [watches, detached] :
       {std::pair{&data_watches_, &entry.detached_data}, std::pair{&child_watches_, &entry.detached_children}}) {
    for (auto w = watches->begin(); w != watches->end();) {
      if (w->second.session != session) {
        ++w;
        continue;
      }
      detached->emplace_back(w->first, std::move(w->second));
      w = watches->erase(w);
    }
  }
  entry.post([on_session = entry.on_session] { on_session(SessionState::kConnecting); });
}

void MemoryKeeper::reconnect(int64_t session) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = sessions_.find(session);
  if (it == sessions_.end() || it->second.connected || it->second.abandoned) return;
  SessionEntry& entry = it->second;
  entry.connected = true;
  if (entry.expired) {
    entry.post([on_session = entry.on_session] { on_session(SessionState::kExpired); });
    return;
  }
  entry.post([on_session = entry.on_session] { on_session(SessionState::kConnected); });
  restoreWatches(entry);
}

void MemoryKeeper::restoreWatches(SessionEntry& entry) {
  const auto fireNow = [&entry](Watcher& watcher, WatchEvent event) {
    entry.post([watch = std::move(watcher.watch), event] { watch(event); });
  };
  for (auto& [path, watcher] : entry.detached_data) {
    auto node = nodes_.find(path);
    if (watcher.on_absent && node != nodes_.end()) {
      fireNow(watcher, WatchEvent::kCreated);
    } else if (!watcher.on_absent && node == nodes_.end()) {
      fireNow(watcher, WatchEvent::kDeleted);
    } else if (!watcher.on_absent && node->second.stat.mzxid > entry.seen_zxid) {
      fireNow(watcher, WatchEvent::kChanged);
    } else {
      data_watches_.emplace(path, std::move(watcher));
    }
  }
  for (auto& [path, watcher] : entry.detached_children) {
    auto node = nodes_.find(path);
    if (node == nodes_.end()) {
      fireNow(watcher, WatchEvent::kDeleted);
    } else if (node->second.pzxid > entry.seen_zxid) {
      fireNow(watcher, WatchEvent::kChild);
    } else {
      child_watches_.emplace(path, std::move(watcher));
    }
  }
  entry.detached_data.clear();
  entry.detached_children.clear();
}

void MemoryKeeper::expire(int64_t session) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = sessions_.find(session);
  if (it == sessions_.end() || it->second.expired) return;
  endSession(session);
  if (it->second.abandoned) {
    sessions_.erase(it);
    return;
  }
  SessionEntry& entry = it->second;
  entry.expired = true;
  if (entry.connected) entry.post([on_session = entry.on_session] { on_session(SessionState::kExpired); });
}

void MemoryKeeper::endSession(int64_t session) {
  // Its watches go first: a session that ends hears nothing of it.
  forgetWatches(session);
  const std::set<std::string> ephemerals = sessions_[session].ephemerals;
  for (const auto& path : ephemerals) removeNode(path);
}

void MemoryKeeper::forgetWatches(int64_t session) {
  for (auto* watches : {&data_watches_, &child_watches_}) {
    for (auto it = watches->begin(); it != watches->end();) {
      it = it->second.session == session ? watches->erase(it) : std::next(it);
    }
  }
  if (auto it = sessions_.find(session); it != sessions_.end()) {
    it->second.detached_data.clear();
    it->second.detached_children.clear();
  }
}

void MemoryKeeper::closed(int64_t session) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = sessions_.find(session);
  if (it == sessions_.end()) return;
  if (!it->second.connected && !it->second.expired) {
    // A close that cannot reach the server: the session stays, with its
    // nodes, until it expires.
    it->second.abandoned = true;
    it->second.post = [](std::function<void()>) {};
    forgetWatches(session);
    return;
  }
  endSession(session);
  sessions_.erase(it);
}

bool MemoryKeeper::abandoned(int64_t session) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = sessions_.find(session);
  return it != sessions_.end() && it->second.abandoned;
}

size_t MemoryKeeper::watchCount(int64_t session) const {
  std::lock_guard<std::mutex> lock(mu_);
  size_t count = 0;
  for (const auto* watches : {&data_watches_, &child_watches_}) {
    for (const auto& [path, watcher] : *watches) count += watcher.session == session ? 1 : 0;
  }
  return count;
}

std::optional<Result> MemoryKeeper::peek(const std::string& path) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = nodes_.find(path);
  if (it == nodes_.end()) return std::nullopt;
  Result result = get(path);
  result.path = path;
  result.children.assign(it->second.children.begin(), it->second.children.end());
  return result;
}

}  // namespace coordd::backend::keeper
