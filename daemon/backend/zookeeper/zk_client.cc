#include "backend/zookeeper/zk_client.h"

#include <algorithm>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace coordd::backend::zookeeper {

using keeper::Code;
using keeper::Result;

struct ZkClient::WatchEntry {
  ZkClient* client;
  Watch watch;
};

struct ZkClient::Call {
  Post post;
  Done done;
  metrics::Histogram& latency;
  std::chrono::steady_clock::time_point issued;
  // The watch set with an exists or children call. The C client registers
  // it only on the answers that set one (exists: OK and NONODE; children:
  // OK); on any other it never fires and is forgotten here.
  WatchEntry* watch = nullptr;
  bool watch_on_absent = false;  // exists: NONODE sets it too

  // Forgets a watch the answer did not set, then hands the result on.
  void finish(Result result) {
    const bool watch_set = result.code == Code::kOk || (watch_on_absent && result.code == Code::kNoNode);
    if (watch != nullptr && !watch_set) watch->client->dropWatch(watch);
    latency.observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - issued).count());
    post([done = std::move(done), result = std::move(result)] { done(result); });
  }
};

struct ZkClient::Multi {
  std::unique_ptr<Call> call;
  std::vector<keeper::Op> ops;
  std::vector<zoo_op_t> zops;
  std::vector<zoo_op_result_t> results;
  std::vector<std::string> paths;  // create: the path made
  std::vector<Stat> stats;         // set
};

namespace {

keeper::Stat fromZk(const Stat& stat) {
  return keeper::Stat{stat.czxid, stat.mzxid, stat.version, stat.ephemeralOwner, stat.numChildren};
}

int zkFlags(keeper::CreateMode mode) {
  switch (mode) {
    case keeper::CreateMode::kPersistent:
      break;
    case keeper::CreateMode::kEphemeral:
      return ZOO_EPHEMERAL;
    case keeper::CreateMode::kEphemeralSequential:
      return ZOO_EPHEMERAL_SEQUENTIAL;
    case keeper::CreateMode::kContainer:
      return ZOO_CONTAINER;
  }
  return 0;
}

// Hands a result to the call's thread and frees the call.
void complete(void* context, Result result) {
  std::unique_ptr<ZkClient::Call> call(static_cast<ZkClient::Call*>(context));
  call->finish(std::move(result));
}

void onString(int rc, const char* value, const Stat* stat, const void* data) {
  Result result;
  result.code = zkCode(rc);
  if (value != nullptr) result.path = value;
  if (stat != nullptr) result.stat = fromZk(*stat);
  complete(const_cast<void*>(data), std::move(result));
}

void onSynced(int rc, const char* value, const void* data) {
  Result result;
  result.code = zkCode(rc);
  if (value != nullptr) result.path = value;
  complete(const_cast<void*>(data), std::move(result));
}

void onData(int rc, const char* value, int len, const Stat* stat, const void* data) {
  Result result;
  result.code = zkCode(rc);
  if (value != nullptr && len > 0) result.data.assign(value, static_cast<size_t>(len));
  if (stat != nullptr) result.stat = fromZk(*stat);
  complete(const_cast<void*>(data), std::move(result));
}

void onStat(int rc, const Stat* stat, const void* data) {
  Result result;
  result.code = zkCode(rc);
  if (stat != nullptr) result.stat = fromZk(*stat);
  complete(const_cast<void*>(data), std::move(result));
}

void onStrings(int rc, const String_vector* strings, const Stat* stat, const void* data) {
  Result result;
  result.code = zkCode(rc);
  if (strings != nullptr) {
    for (int32_t i = 0; i < strings->count; ++i) result.children.emplace_back(strings->data[i]);
  }
  if (stat != nullptr) result.stat = fromZk(*stat);
  complete(const_cast<void*>(data), std::move(result));
}

void onMulti(int rc, const void* data) {
  std::unique_ptr<ZkClient::Multi> multi(static_cast<ZkClient::Multi*>(const_cast<void*>(data)));
  Result result;
  result.code = zkCode(rc);
  const size_t n = multi->ops.size();
  // A failed op has the transaction's code, those before it ZOK and those
  // after ZRUNTIMEINCONSISTENCY; a request that failed as a whole (lost,
  // session gone) gives every op its code.
  size_t with_code = 0;
  for (const auto& r : multi->results) with_code += r.err == rc ? 1 : 0;
  if (rc == ZOK || (with_code == 1 && !keeper::uncertain(result.code))) {
    for (size_t i = 0; i < n; ++i) {
      Result op;
      op.code = rc == ZOK ? Code::kOk : multi->results[i].err == rc ? result.code : Code::kNotApplied;
      if (rc == ZOK && multi->ops[i].type == keeper::Op::Type::kCreate) op.path = multi->paths[i].c_str();
      if (rc == ZOK && multi->ops[i].type == keeper::Op::Type::kSet) op.stat = fromZk(multi->stats[i]);
      result.results.push_back(std::move(op));
    }
  }
  multi->call->finish(std::move(result));
}

void onVoid(int rc, const void* data) {
  Result result;
  result.code = zkCode(rc);
  complete(const_cast<void*>(data), std::move(result));
}

}  // namespace

ZkClient::ZkClient(Post post, SessionWatch on_session, std::shared_ptr<metrics::DaemonMetrics> metrics)
    : post_(std::move(post)),
      on_session_(std::move(on_session)),
      metrics_(std::move(metrics)),
      create_latency_(metrics_->coordinator_ops.with({"create"})),
      get_latency_(metrics_->coordinator_ops.with({"get"})),
      exists_latency_(metrics_->coordinator_ops.with({"exists"})),
      children_latency_(metrics_->coordinator_ops.with({"children"})),
      delete_latency_(metrics_->coordinator_ops.with({"delete"})),
      sync_latency_(metrics_->coordinator_ops.with({"sync"})),
      multi_latency_(metrics_->coordinator_ops.with({"multi"})) {}

absl::StatusOr<std::unique_ptr<ZkClient>> ZkClient::connect(const Options& options, Post post,
                                                            SessionWatch on_session) {
  static const bool quiet = [] {
    zoo_set_debug_level(ZOO_LOG_LEVEL_ERROR);
    return true;
  }();
  (void)quiet;
  std::unique_ptr<ZkClient> client(new ZkClient(std::move(post), std::move(on_session), options.metrics));
  if (options.creator_acl) client->acl_ = &ZOO_CREATOR_ALL_ACL;
  client->zh_ =
      zookeeper_init(options.hosts.c_str(), &ZkClient::onSession, options.timeout_ms, nullptr, client.get(), 0);
  if (client->zh_ == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("zookeeper: cannot start a client for '", options.hosts, "'"));
  }
  // By default the C client resolves the server names again on every pass
  // of its I/O loop: a fifth of coordd's CPU under load. Once a minute is
  // enough to follow DNS; a lost connection still resolves at once.
  zoo_set_servers_resolution_delay(client->zh_, 60 * 1000);
  if (!options.digest.empty()) {
    // Sent before anything else on every (re)connection; a refusal ends the
    // session with ZOO_AUTH_FAILED_STATE.
    int rc = zoo_add_auth(client->zh_, "digest", options.digest.data(), static_cast<int>(options.digest.size()),
                          nullptr, nullptr);
    if (rc != ZOK) return keeper::toStatus(zkCode(rc), "zookeeper: digest credentials");
  }
  return client;
}

ZkClient::~ZkClient() {
  if (zh_ != nullptr) zookeeper_close(zh_);  // runs pending completions with ZCLOSING
}

void ZkClient::onSession(zhandle_t*, int type, int state, const char*, void* context) {
  if (type != ZOO_SESSION_EVENT) return;
  keeper::SessionState session;
  if (state == ZOO_CONNECTED_STATE) {
    session = keeper::SessionState::kConnected;
  } else if (state == ZOO_CONNECTING_STATE || state == ZOO_ASSOCIATING_STATE) {
    session = keeper::SessionState::kConnecting;
  } else if (state == ZOO_EXPIRED_SESSION_STATE) {
    session = keeper::SessionState::kExpired;
  } else if (state == ZOO_AUTH_FAILED_STATE) {
    session = keeper::SessionState::kAuthFailed;
  } else {
    return;
  }
  auto* client = static_cast<ZkClient*>(context);
  client->post_([on_session = client->on_session_, session] { on_session(session); });
}

void ZkClient::onWatch(zhandle_t*, int type, int, const char*, void* context) {
  // Node watches also see every session event; those change nothing here.
  if (type == ZOO_SESSION_EVENT) return;
  auto* entry = static_cast<WatchEntry*>(context);
  ZkClient* client = entry->client;
  std::unique_ptr<WatchEntry> owned;
  {
    std::lock_guard<std::mutex> lock(client->mu_);
    auto it = client->watches_.find(entry);
    if (it == client->watches_.end()) return;
    owned = std::move(it->second);
    client->watches_.erase(it);
  }
  keeper::WatchEvent event = keeper::WatchEvent::kChanged;
  if (type == ZOO_CREATED_EVENT) event = keeper::WatchEvent::kCreated;
  if (type == ZOO_DELETED_EVENT) event = keeper::WatchEvent::kDeleted;
  if (type == ZOO_CHILD_EVENT) event = keeper::WatchEvent::kChild;
  client->post_([watch = std::move(owned->watch), event] { watch(event); });
}

ZkClient::Call* ZkClient::newCall(metrics::Histogram& latency, Done done) {
  return new Call{post_, std::move(done), latency, std::chrono::steady_clock::now()};
}

void ZkClient::failed(Call* call, int rc) {
  Result result;
  result.code = zkCode(rc);
  complete(call, std::move(result));
}

ZkClient::WatchEntry* ZkClient::newWatch(Watch watch) {
  if (!watch) return nullptr;
  auto entry = std::make_unique<WatchEntry>(WatchEntry{this, std::move(watch)});
  WatchEntry* raw = entry.get();
  std::lock_guard<std::mutex> lock(mu_);
  watches_[raw] = std::move(entry);
  return raw;
}

void ZkClient::dropWatch(WatchEntry* entry) {
  std::lock_guard<std::mutex> lock(mu_);
  watches_.erase(entry);
}

size_t ZkClient::watchesPending() const {
  std::lock_guard<std::mutex> lock(mu_);
  return watches_.size();
}

void ZkClient::create(const std::string& path, const std::string& data, keeper::CreateMode mode, Done done) {
  Call* call = newCall(create_latency_, std::move(done));
  int rc =
      zoo_acreate2(zh_, path.c_str(), data.data(), static_cast<int>(data.size()), acl_, zkFlags(mode), onString, call);
  if (rc != ZOK) failed(call, rc);
}

void ZkClient::get(const std::string& path, Done done) {
  Call* call = newCall(get_latency_, std::move(done));
  int rc = zoo_aget(zh_, path.c_str(), 0, onData, call);
  if (rc != ZOK) failed(call, rc);
}

void ZkClient::exists(const std::string& path, Watch watch, Done done) {
  Call* call = newCall(exists_latency_, std::move(done));
  WatchEntry* entry = newWatch(std::move(watch));
  call->watch = entry;
  call->watch_on_absent = true;
  int rc = zoo_awexists(zh_, path.c_str(), entry ? &ZkClient::onWatch : nullptr, entry, onStat, call);
  if (rc != ZOK) failed(call, rc);
}

void ZkClient::children(const std::string& path, Watch watch, Done done) {
  Call* call = newCall(children_latency_, std::move(done));
  WatchEntry* entry = newWatch(std::move(watch));
  call->watch = entry;
  int rc = zoo_awget_children2(zh_, path.c_str(), entry ? &ZkClient::onWatch : nullptr, entry, onStrings, call);
  if (rc != ZOK) failed(call, rc);
}

void ZkClient::remove(const std::string& path, int32_t version, Done done) {
  Call* call = newCall(delete_latency_, std::move(done));
  int rc = zoo_adelete(zh_, path.c_str(), version, onVoid, call);
  if (rc != ZOK) failed(call, rc);
}

void ZkClient::sync(const std::string& path, Done done) {
  Call* call = newCall(sync_latency_, std::move(done));
  int rc = zoo_async(zh_, path.c_str(), onSynced, call);
  if (rc != ZOK) failed(call, rc);
}

void ZkClient::multi(std::vector<keeper::Op> ops, Done done) {
  if (std::any_of(ops.begin(), ops.end(), [](const keeper::Op& op) { return op.isContainerCreate(); })) {
    return failed(newCall(multi_latency_, std::move(done)), ZUNIMPLEMENTED);
  }
  auto multi = std::make_unique<Multi>();
  multi->call.reset(newCall(multi_latency_, std::move(done)));
  multi->ops = std::move(ops);
  const size_t n = multi->ops.size();
  multi->zops.resize(n);
  multi->results.resize(n);
  multi->paths.resize(n);
  multi->stats.resize(n);
  for (size_t i = 0; i < n; ++i) {
    const keeper::Op& op = multi->ops[i];
    switch (op.type) {
      case keeper::Op::Type::kCreate:
        multi->paths[i].assign(op.path.size() + 16, '\0');  // room for a sequence suffix
        zoo_create_op_init(&multi->zops[i], op.path.c_str(), op.data.data(), static_cast<int>(op.data.size()), acl_,
                           zkFlags(op.mode), multi->paths[i].data(), static_cast<int>(multi->paths[i].size()));
        break;
      case keeper::Op::Type::kDelete:
        zoo_delete_op_init(&multi->zops[i], op.path.c_str(), op.version);
        break;
      case keeper::Op::Type::kSet:
        zoo_set_op_init(&multi->zops[i], op.path.c_str(), op.data.data(), static_cast<int>(op.data.size()), op.version,
                        &multi->stats[i]);
        break;
    }
  }
  Multi* raw = multi.release();
  int rc = zoo_amulti(zh_, static_cast<int>(n), raw->zops.data(), raw->results.data(), onMulti, raw);
  if (rc != ZOK) {
    std::unique_ptr<Multi> unissued(raw);
    failed(unissued->call.release(), rc);
  }
}

int64_t ZkClient::sessionId() const {
  const clientid_t* id = zoo_client_id(zh_);
  return id != nullptr ? id->client_id : 0;
}

int64_t ZkClient::negotiatedTimeoutMs() const { return zoo_recv_timeout(zh_); }

std::string ZkClient::server() const {
  const char* server = zoo_get_current_server(zh_);
  return server != nullptr ? server : "";
}

keeper::Code zkCode(int rc) {
  switch (rc) {
    case ZOK:
      return Code::kOk;
    case ZNONODE:
      return Code::kNoNode;
    case ZNODEEXISTS:
      return Code::kNodeExists;
    case ZCONNECTIONLOSS:
      return Code::kConnectionLoss;
    case ZOPERATIONTIMEOUT:
      return Code::kOperationTimeout;
    case ZCLOSING:
      return Code::kClosing;
    case ZINVALIDSTATE:
      return Code::kInvalidState;
    case ZNOAUTH:
      return Code::kNoAuth;
    case ZAUTHFAILED:
      return Code::kAuthFailed;
    case ZSESSIONEXPIRED:
      return Code::kSessionExpired;
    case ZSESSIONMOVED:
      return Code::kSessionMoved;
    case ZBADVERSION:
      return Code::kBadVersion;
    case ZNOTEMPTY:
      return Code::kNotEmpty;
    case ZNOCHILDRENFOREPHEMERALS:
      return Code::kNoChildrenForEphemerals;
    case ZBADARGUMENTS:
      return Code::kBadArguments;
    case ZUNIMPLEMENTED:
      return Code::kUnimplemented;
    default:
      return Code::kOther;
  }
}

}  // namespace coordd::backend::zookeeper
