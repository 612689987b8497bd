#include "backend/recipes/keeper_backend.h"

#include <algorithm>
#include <future>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "spdlog/spdlog.h"

namespace coordd::backend::recipes {
namespace {

using keeper::codeName;
using keeper::toStatus;

constexpr char kWaiterPrefix[] = "waiter-";
constexpr char kCandidatePrefix[] = "candidate-";
// The election Replicante's cleaner uses too: its primary cleans.
constexpr char kCleanerElection[] = "zookeeper-cleaner";

std::string parentOf(const std::string& path) { return path.substr(0, path.rfind('/')); }
std::string baseOf(const std::string& path) { return path.substr(path.rfind('/') + 1); }

// Children named prefix<sequence>, in sequence order.
std::vector<std::string> sequenced(std::vector<std::string> children, const std::string& prefix) {
  // Foreign or malformed children (no 10-digit sequence) take no part.
  children.erase(
      std::remove_if(children.begin(), children.end(),
                     [&](const std::string& c) { return c.rfind(prefix, 0) != 0 || c.size() < prefix.size() + 10; }),
      children.end());
  std::sort(children.begin(), children.end(), [&](const std::string& a, const std::string& b) {
    return a.substr(a.size() - 10) < b.substr(b.size() - 10);
  });
  return children;
}

}  // namespace

KeeperBackend::KeeperBackend(KeeperOptions options)
    : options_(std::move(options)),
      layout_(options_.root),
      own_executor_(options_.executor == nullptr ? std::make_unique<SerialExecutor>() : nullptr),
      executor_(options_.executor != nullptr ? options_.executor : own_executor_.get()) {
  info_ = BackendInfo{options_.kind, "", options_.session_timeout, ""};
}

KeeperBackend::~KeeperBackend() { stop(); }

template <typename T>
void KeeperBackend::whenConnected(T done, std::function<void()> body) {
  executor_->post([this, done = std::move(done), body = std::move(body)]() mutable {
    if (auto status = usable(); !status.ok()) return done(status);
    body();
  });
}

absl::Status KeeperBackend::usable() const {
  if (link_ == Link::kConnected && zk_) return absl::OkStatus();
  return absl::UnavailableError(absl::StrCat("not connected to ", options_.name));
}

absl::Status KeeperBackend::expired() const {
  return absl::AbortedError(absl::StrCat(options_.name, " session expired"));
}

// --- Session ----------------------------------------------------------------

void KeeperBackend::start(Listener* listener) {
  listener_ = listener;
  executor_->post([this] {
    connect();
    scheduleCleaner();
  });
}

void KeeperBackend::stop() {
  if (stopping_.exchange(true)) return;
  auto close = [this] {
    stopped_ = true;
    ++generation_;  // completions of the closing session change nothing
    auto waiters = std::move(waiters_);
    waiters_.clear();
    for (auto& [id, waiter] : waiters) waiter.done(absl::UnavailableError("daemon shutting down"));
    for (auto& [term, held] : candidates_) {
      auto callers = std::move(held.awaiting);
      held.awaiting.clear();
      for (auto& caller : callers) caller.done(absl::UnavailableError("daemon shutting down"));
    }
    zk_.reset();  // closes the session: the ephemeral nodes go at once
  };
  // On an executor of someone else's (the simulation's one thread), the
  // caller is on it.
  if (!own_executor_) return close();
  std::promise<void> closed;
  auto future = closed.get_future();
  own_executor_->post([&] {
    close();
    closed.set_value();
  });
  future.wait();
  own_executor_->stop();
}

void KeeperBackend::connect() {
  if (stopped_) return;
  int64_t generation = ++generation_;
  link_ = Link::kConnecting;
  auto client = options_.open_session([this](std::function<void()> task) { executor_->post(std::move(task)); },
                                      [this, generation](SessionState state) { onSession(generation, state); });
  if (!client.ok()) {
    spdlog::error("{}: {}; retrying in 1s", options_.kind, client.status().ToString());
    executor_->postAt(executor_->now() + std::chrono::seconds(1), [this] { connect(); });
    return;
  }
  zk_ = std::move(*client);
}

void KeeperBackend::updateInfo() {
  std::lock_guard<std::mutex> lock(info_mu_);
  info_.session = absl::StrFormat("0x%x", zk_->sessionId());
  info_.session_timeout = absl::Milliseconds(zk_->negotiatedTimeoutMs());
  info_.server = zk_->server();
}

BackendInfo KeeperBackend::info() const {
  std::lock_guard<std::mutex> lock(info_mu_);
  return info_;
}

Clock::time_point KeeperBackend::leaseDeadline() const {
  if (options_.in_process) return Clock::time_point::max();
  return Clock::time_point(std::chrono::nanoseconds(lease_deadline_ns_.load()));
}

Clock::time_point KeeperBackend::holdDeadline() const {
  if (options_.in_process) return Clock::time_point::max();
  return Clock::time_point(std::chrono::nanoseconds(hold_deadline_ns_.load()));
}

void KeeperBackend::probeLoop(int64_t generation) {
  if (generation != generation_ || stopped_) return;
  const auto now = executor_->now();
  if (link_ == Link::kConnected && !lapsed_ && now >= leaseDeadline()) {
    lapsed_ = true;
    spdlog::warn(
        "{}: the session has not been confirmed for {} (this process or the server was stalled); suspended "
        "until it is",
        options_.kind, absl::FormatDuration(absl::FromChrono(now - confirmed_sent_)));
    listener_->onLinkState(LinkState::kSuspended);
  }
  probe();
  executor_->postAt(now + absl::ToChronoNanoseconds(info().session_timeout / 6),
                    [this, generation] { probeLoop(generation); });
}

void KeeperBackend::probe() {
  if (!zk_ || link_ != Link::kConnected) return;
  const int64_t generation = generation_;
  const auto sent = executor_->now();
  zk_->sync(rootPath(), [this, generation, sent](const Result& r) {
    if (generation == generation_ && r.code == Code::kOk) confirmed(sent);
  });
}

void KeeperBackend::confirmed(Clock::time_point sent) {
  if (sent <= confirmed_sent_) return;
  confirmed_sent_ = sent;
  // The server heard the probe no earlier than `sent` and expires the
  // session no sooner than a timeout after it last heard from us: nobody can
  // have what we hold before sent + timeout. We vouch for two thirds of it.
  const absl::Duration timeout = info().session_timeout;
  const auto nanos = [](Clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  };
  hold_deadline_ns_.store(nanos(sent + absl::ToChronoNanoseconds(timeout)));
  lease_deadline_ns_.store(nanos(sent + absl::ToChronoNanoseconds(timeout * 2 / 3)));
  // An answer that comes after the deadline it would set proves nothing for
  // now: un-lapsing on it would report RECONNECTED and lapse again at once.
  if (lapsed_ && link_ == Link::kConnected && executor_->now() < leaseDeadline()) {
    lapsed_ = false;
    spdlog::info("{}: the session is confirmed again", options_.kind);
    listener_->onLinkState(LinkState::kReconnected);
    // The connection never dropped: every watch is still set and every call
    // in flight will be answered, so nothing is set again.
  }
}

void KeeperBackend::onSession(int64_t generation, SessionState state) {
  if (generation != generation_ || !zk_) return;
  if (state == SessionState::kConnected) {
    updateInfo();
    if (link_ == Link::kConnecting && !opening_) {
      // A new session: make sure the chroot exists before anyone uses it.
      opening_ = true;
      ensurePath(rootPath(), [this, generation](Code rc) {
        if (generation != generation_) return;
        if (rc != Code::kOk && rc != Code::kConnectionLoss && rc != Code::kOperationTimeout) {
          spdlog::error("{}: cannot create the chroot {}: {}", options_.kind, layout_.root(), codeName(rc));
        }
        // The first lease comes before CONNECTED, so that the first holds are
        // vouched for at once.
        const auto sent = executor_->now();
        zk_->sync(rootPath(), [this, generation, sent](const Result& r) {
          if (generation != generation_) return;
          opening_ = false;
          if (r.code == Code::kConnectionLoss || r.code == Code::kOperationTimeout)
            return;  // the next CONNECTED tries again
          if (r.code == Code::kOk) confirmed(sent);
          link_ = Link::kConnected;
          listener_->onLinkState(LinkState::kConnected);
          createMember();
          campaignCleaner();
          probeLoop(generation);
        });
      });
    } else if (link_ == Link::kSuspended) {
      link_ = Link::kConnected;
      lapsed_ = false;
      listener_->onLinkState(LinkState::kReconnected);
      reconcileUncertain();
      rearmAll();
      campaignCleaner();  // if its registration failed while away
      probe();
    }
  } else if (state == SessionState::kConnecting) {
    if (link_ != Link::kConnected) return;
    link_ = Link::kSuspended;
    int64_t suspension = ++suspensions_;
    listener_->onLinkState(LinkState::kSuspended);
    // The C client learns of an expiry only when it reconnects. The server
    // expires the session a timeout after it last heard from us, which is
    // about when the last probe was answered: then it is gone anyway.
    const auto timeout = absl::ToChronoNanoseconds(info().session_timeout);
    const auto now = executor_->now();
    const auto expiry =
        confirmed_sent_ == Clock::time_point{} ? now + timeout : std::max(now, confirmed_sent_ + timeout);
    executor_->postAt(expiry, [this, generation, suspension] {
      if (generation == generation_ && link_ == Link::kSuspended && suspension == suspensions_) {
        expire(absl::StrCat("no contact with ", options_.name, " for the session timeout"));
      }
    });
  } else if (state == SessionState::kExpired) {
    expire(absl::StrCat(options_.name, " session expired"));
  } else if (state == SessionState::kAuthFailed) {
    spdlog::error("{}: the digest credentials (zookeeper.auth) were refused; retrying in 5s", options_.kind);
    executor_->postAt(executor_->now() + std::chrono::seconds(5), [this, generation] {
      if (generation == generation_) expire("authentication failed");
    });
  }
}

void KeeperBackend::expire(const std::string& why) {
  spdlog::warn("{}: {}: everything held through the session is gone; opening a new session", options_.kind, why);
  ++generation_;  // completions of the old session now answer Aborted
  auto waiters = std::move(waiters_);
  waiters_.clear();
  locks_.clear();
  auto candidates = std::move(candidates_);
  candidates_.clear();
  uncertain_.clear();
  for (auto& [election, watched] : watched_) watched.armed = false;  // its watch went with the session
  cleaner_term_ = 0;
  opening_ = false;
  confirmed_sent_ = {};
  lapsed_ = false;
  lease_deadline_ns_.store(0);
  hold_deadline_ns_.store(0);
  zk_.reset();
  for (auto& [id, waiter] : waiters) waiter.done(expired());
  for (auto& [term, held] : candidates) {
    for (auto& caller : held.awaiting) caller.done(expired());
  }
  listener_->onLinkState(LinkState::kExpired);
  connect();
}

// --- Helpers ----------------------------------------------------------------

void KeeperBackend::ensurePath(const std::string& path, std::function<void(Code rc)> done) {
  if (path.empty() || path == "/") return done(Code::kOk);
  zk_->create(path, "", CreateMode::kPersistent, [this, path, done](const Result& r) {
    if (r.code != Code::kNoNode) return done(r.code == Code::kNodeExists ? Code::kOk : r.code);
    ensurePath(parentOf(path), [this, path, done](Code rc) {
      if (rc != Code::kOk) return done(rc);
      zk_->create(path, "", CreateMode::kPersistent,
                  [done](const Result& again) { done(again.code == Code::kNodeExists ? Code::kOk : again.code); });
    });
  });
}

void KeeperBackend::createWithParents(const std::string& path, const std::string& data, CreateMode mode,
                                      Keeper::Done done, int attempt) {
  int64_t generation = generation_;
  zk_->create(path, data, mode, [this, path, data, mode, done, generation, attempt](const Result& r) {
    // Code::kNoNode: a parent is missing, or the cleaner just removed an empty one.
    if (r.code != Code::kNoNode || generation != generation_ || attempt >= 3) return done(r);
    ensurePath(parentOf(path), [this, path, data, mode, done, generation, attempt](Code rc) {
      if (rc != Code::kOk || generation != generation_) {
        Result failed;
        failed.code = rc == Code::kOk ? Code::kSessionExpired : rc;
        return done(failed);
      }
      createWithParents(path, data, mode, done, attempt + 1);
    });
  });
}

void KeeperBackend::noteIfUncertain(Code rc, const std::string& path) {
  if (rc == Code::kConnectionLoss || rc == Code::kOperationTimeout) uncertain_.insert(path);
}

void KeeperBackend::removeOwn(const std::string& path) {
  int64_t generation = generation_;
  zk_->remove(path, -1, [this, path, generation](const Result& r) {
    if (generation == generation_ && r.code != Code::kOk && r.code != Code::kNoNode) uncertain_.insert(path);
  });
}

void KeeperBackend::owned(const std::string& path, int64_t token,
                          std::function<void(Code rc, bool owned, const Stat&)> done) {
  zk_->exists(path, nullptr, [this, token, done](const Result& r) {
    bool mine = r.code == Code::kOk && r.stat.czxid == token && zk_ && r.stat.ephemeral_owner == zk_->sessionId();
    done(r.code, mine, r.stat);
  });
}

// What a fan-out of reads came to: the first failure other than a node gone
// meanwhile (a partial answer is not an answer), else kOk.
namespace {
Code worst(Code so_far, Code code) {
  return so_far == Code::kOk && code != Code::kOk && code != Code::kNoNode ? code : so_far;
}
}  // namespace

void KeeperBackend::getAll(std::vector<std::string> paths, std::function<void(Code rc, Results)> done) {
  auto results = std::make_shared<Results>(paths.size());
  auto pending = std::make_shared<size_t>(paths.size());
  auto failure = std::make_shared<Code>(Code::kOk);
  if (paths.empty()) return done(Code::kOk, {});
  for (size_t i = 0; i < paths.size(); ++i) {
    zk_->get(paths[i], [results, pending, failure, done, i, path = paths[i]](const Result& r) {
      (*results)[i] = r;
      (*results)[i].path = path;
      *failure = worst(*failure, r.code);
      if (--*pending > 0) return;
      if (*failure != Code::kOk) return done(*failure, {});
      done(Code::kOk, std::move(*results));
    });
  }
}

void KeeperBackend::listBucketed(const std::string& root, std::function<void(Code rc, std::vector<std::string>)> done) {
  zk_->children(root, nullptr, [this, root, done](const Result& buckets) {
    if (buckets.code == Code::kNoNode) return done(Code::kOk, {});
    if (buckets.code != Code::kOk) return done(buckets.code, {});
    auto paths = std::make_shared<std::vector<std::string>>();
    auto pending = std::make_shared<size_t>(buckets.children.size());
    auto failure = std::make_shared<Code>(Code::kOk);
    if (buckets.children.empty()) return done(Code::kOk, {});
    for (const auto& bucket : buckets.children) {
      std::string dir = root + "/" + bucket;
      zk_->children(dir, nullptr, [paths, pending, failure, done, dir](const Result& leaves) {
        for (const auto& leaf : leaves.children) paths->push_back(dir + "/" + leaf);
        *failure = worst(*failure, leaves.code);
        if (--*pending > 0) return;
        if (*failure != Code::kOk) return done(*failure, {});
        done(Code::kOk, std::move(*paths));
      });
    }
  });
}

// --- Locks ------------------------------------------------------------------

void KeeperBackend::tryLock(const std::string& name, const OwnerRecord& owner, Callback<TryLockResult> done) {
  whenConnected(done, [this, name, owner, done] { attemptLock(name, owner, 0, done); });
}

void KeeperBackend::attemptLock(const std::string& name, const OwnerRecord& owner, int attempt,
                                Callback<TryLockResult> done) {
  const std::string path = layout_.lock(name);
  int64_t generation = generation_;
  createWithParents(path, encodeLock(name, owner), CreateMode::kEphemeral, [=](const Result& r) {
    if (generation != generation_) return done(expired());
    if (r.code == Code::kOk) {
      holdLock(name, path, r.stat.czxid);
      return done(TryLockResult{true, r.stat.czxid, std::nullopt});
    }
    if (r.code == Code::kConnectionLoss || r.code == Code::kOperationTimeout) uncertain_.insert(path);
    if (r.code != Code::kNodeExists) return done(toStatus(r.code, "lock " + name));
    zk_->get(path, [=](const Result& g) {
      if (generation != generation_) return done(expired());
      if (g.code == Code::kNoNode && attempt < 3)
        return attemptLock(name, owner, attempt + 1, done);  // released meanwhile
      if (g.code != Code::kOk) return done(toStatus(g.code, "lock " + name));
      DecodedNode node = decodeNode(g.data);
      if (node.owner.node_id.empty()) node.owner.label = "(foreign node without an owner record)";
      done(TryLockResult{false, 0, LockHolder{node.owner, g.stat.czxid}});
    });
  });
}

void KeeperBackend::holdLock(const std::string& name, const std::string& path, int64_t token) {
  int64_t round = next_round_++;
  locks_[name] = HeldLock{path, token, round};
  int64_t generation = generation_;
  auto current = [this, name, token, round, generation]() -> HeldLock* {
    auto it = locks_.find(name);
    if (generation != generation_ || it == locks_.end() || it->second.token != token || it->second.round != round) {
      return nullptr;
    }
    return &it->second;
  };
  auto lost = [this, name, token]() {
    locks_.erase(name);
    listener_->onLockLost(name, token, absl::StrCat("lock node deleted in ", options_.name));
  };
  // Someone else deleting the node (an admin) makes the lock LOST.
  zk_->exists(
      path,
      [this, name, token, current, lost](WatchEvent type) {
        HeldLock* held = current();
        if (held == nullptr) return;
        if (type == WatchEvent::kDeleted) return lost();
        holdLock(name, held->path, token);  // re-arm
      },
      [current, lost](const Result& r) {
        // Gone before the watch was set; other failures: re-armed on reconnect.
        HeldLock* held = current();
        if (held == nullptr) return;
        if (r.code == Code::kNoNode) return lost();
        held->armed = r.code == Code::kOk;
      });
}

void KeeperBackend::unlock(const std::string& name, int64_t token, Done done) {
  whenConnected(done, [this, name, token, done] {
    auto it = locks_.find(name);
    if (it != locks_.end() && it->second.token == token) locks_.erase(it);
    const std::string path = layout_.lock(name);
    owned(path, token, [this, name, token, path, done](Code rc, bool mine, const Stat& stat) {
      if (rc != Code::kOk && rc != Code::kNoNode) return done(toStatus(rc, "lock " + name));
      if (!mine) return done(absl::NotFoundError(absl::StrCat("lock '", name, "' is not held with token ", token)));
      // ZooKeeper deletes only by version, and every lock node has version 0:
      // if an admin freed the lock and another daemon took it between the
      // check and the delete, that holder is told LOST by its watch.
      zk_->remove(path, stat.version, [name, done](const Result& r) {
        done(r.code == Code::kOk ? absl::OkStatus() : toStatus(r.code, "lock " + name));
      });
    });
  });
}

void KeeperBackend::verifyLock(const std::string& name, int64_t token, Callback<bool> done) {
  whenConnected(done, [this, name, token, done] {
    owned(layout_.lock(name), token, [name, done](Code rc, bool mine, const Stat&) {
      if (rc != Code::kOk && rc != Code::kNoNode) return done(toStatus(rc, "lock " + name));
      done(mine);
    });
  });
}

void KeeperBackend::lock(const std::string& name, const OwnerRecord& owner, int64_t waiter_id, Callback<int64_t> done) {
  whenConnected(done, [this, name, owner, waiter_id, done] {
    std::string payload = encodeLock(name, owner);
    waiters_[waiter_id] = Waiter{name, payload, "", done};
    int64_t generation = generation_;
    const std::string queue = layout_.waiterQueue(name);
    createWithParents(queue + "/" + kWaiterPrefix, payload, CreateMode::kEphemeralSequential,
                      [this, waiter_id, generation, name, queue](const Result& r) {
                        if (generation != generation_) return;  // expire() answered the waiter
                        auto it = waiters_.find(waiter_id);
                        if (it == waiters_.end()) {
                          // Cancelled meanwhile.
                          if (r.code == Code::kOk) removeOwn(r.path);
                          noteIfUncertain(r.code, queue);
                          return;
                        }
                        if (r.code != Code::kOk) {
                          if (r.code == Code::kConnectionLoss || r.code == Code::kOperationTimeout)
                            uncertain_.insert(queue);
                          return finishWaiter(waiter_id, toStatus(r.code, "lock queue of " + name));
                        }
                        it->second.node = r.path;
                        evaluateWaiter(waiter_id);
                      });
  });
}

void KeeperBackend::evaluateWaiter(int64_t waiter_id) {
  auto it = waiters_.find(waiter_id);
  if (it == waiters_.end() || it->second.node.empty() || !zk_) return;
  const std::string queue = parentOf(it->second.node);
  const int64_t round = it->second.round = next_round_++;
  it->second.armed = false;
  const int64_t generation = generation_;
  // The waiter, if this is still its latest evaluation.
  auto current = [this, waiter_id, round, generation]() -> Waiter* {
    auto it = waiters_.find(waiter_id);
    if (generation != generation_ || it == waiters_.end() || it->second.round != round) return nullptr;
    return &it->second;
  };
  zk_->children(queue, nullptr, [this, waiter_id, queue, current](const Result& r) {
    Waiter* waiter = current();
    if (waiter == nullptr) return;
    if (r.code != Code::kOk) return finishWaiter(waiter_id, toStatus(r.code, "lock queue of " + waiter->name));
    auto order = sequenced(r.children, kWaiterPrefix);
    auto pos = std::find(order.begin(), order.end(), baseOf(waiter->node));
    if (pos == order.end()) {
      return finishWaiter(waiter_id, absl::UnavailableError("the waiter's node was deleted by someone else; retry"));
    }
    auto again = [this, waiter_id, current](WatchEvent) {
      if (current() != nullptr) evaluateWaiter(waiter_id);
    };
    // Gone already: look again. Other failures: re-evaluated on reconnect.
    auto again_if_gone = [this, waiter_id, current](const Result& e) {
      Waiter* waiter = current();
      if (waiter == nullptr) return;
      if (e.code == Code::kNoNode) return evaluateWaiter(waiter_id);
      waiter->armed = e.code == Code::kOk;
    };
    if (pos != order.begin()) {
      // Watch only the predecessor: no herd when the lock frees.
      zk_->exists(queue + "/" + *std::prev(pos), again, again_if_gone);
      return;
    }
    const std::string name = waiter->name;
    const std::string path = layout_.lock(name);
    createWithParents(path, waiter->payload, CreateMode::kEphemeral,
                      [this, waiter_id, name, path, again, again_if_gone, current](const Result& c) {
                        Waiter* waiter = current();
                        if (waiter == nullptr) {
                          if (c.code == Code::kOk) removeOwn(path);  // cancelled meanwhile
                          noteIfUncertain(c.code, path);
                          return;
                        }
                        if (c.code == Code::kNodeExists) {
                          // Held, by a waiter before us or a non-blocking acquirer.
                          zk_->exists(path, again, again_if_gone);
                          return;
                        }
                        if (c.code != Code::kOk) {
                          noteIfUncertain(c.code, path);
                          return finishWaiter(waiter_id, toStatus(c.code, "lock " + name));
                        }
                        holdLock(name, path, c.stat.czxid);
                        finishWaiter(waiter_id, c.stat.czxid);
                      });
  });
}

void KeeperBackend::finishWaiter(int64_t waiter_id, absl::StatusOr<int64_t> result) {
  auto it = waiters_.find(waiter_id);
  if (it == waiters_.end()) return;
  Waiter waiter = std::move(it->second);
  waiters_.erase(it);
  if (!waiter.node.empty()) removeOwn(waiter.node);
  waiter.done(std::move(result));
}

void KeeperBackend::cancelLock(const std::string& name, int64_t waiter_id, Done done) {
  whenConnected(done, [this, waiter_id, done] {
    auto it = waiters_.find(waiter_id);
    if (it == waiters_.end()) return done(absl::NotFoundError("no such waiter"));
    Waiter waiter = std::move(it->second);
    waiters_.erase(it);
    waiter.done(absl::CancelledError("wait cancelled"));
    if (waiter.node.empty()) return done(absl::OkStatus());  // its create's completion removes it
    // The waiter is forgotten already: if this delete's answer is lost, the
    // node is reconciled once reconnected (nobody claims it), never left to
    // block the queue behind it on every daemon.
    const int64_t generation = generation_;
    zk_->remove(waiter.node, -1, [this, node = waiter.node, done, generation](const Result& r) {
      if (generation == generation_ && r.code != Code::kOk && r.code != Code::kNoNode) uncertain_.insert(node);
      done(absl::OkStatus());
    });
  });
}

// --- Elections --------------------------------------------------------------

void KeeperBackend::campaign(const std::string& election, const OwnerRecord& owner, const std::string& value,
                             Callback<CampaignResult> done) {
  whenConnected(done, [this, election, owner, value, done] { registerCandidate(election, owner, value, 0, done); });
}

void KeeperBackend::registerCandidate(const std::string& election, const OwnerRecord& owner, const std::string& value,
                                      int attempt, Callback<CampaignResult> done) {
  const std::string dir = layout_.election(election);
  int64_t generation = generation_;
  auto create_candidate = [this, election, owner, value, attempt, done, dir, generation]() {
    zk_->create(dir + "/" + kCandidatePrefix, encodeCandidate(owner, value), CreateMode::kEphemeralSequential,
                [this, election, owner, value, attempt, done, dir, generation](const Result& r) {
                  if (generation != generation_) return done(expired());
                  if (r.code == Code::kNoNode && attempt < 3) {
                    // The cleaner removed the empty parent meanwhile.
                    return registerCandidate(election, owner, value, attempt + 1, done);
                  }
                  if (r.code != Code::kOk) {
                    if (r.code == Code::kConnectionLoss || r.code == Code::kOperationTimeout) uncertain_.insert(dir);
                    return done(toStatus(r.code, "election " + election));
                  }
                  candidates_[r.stat.czxid] = Held{election, r.path, false};
                  watchOwnCandidate(r.stat.czxid);
                  evaluateCandidate(r.stat.czxid, done, true);
                });
  };
  // The election's parent: a container, which ZooKeeper removes once empty;
  // a persistent node where the server has no containers (the cleaner's job).
  auto create_parent = [this, dir, election, create_candidate, done](CreateMode flags, auto& self) -> void {
    zk_->create(
        dir, encodeElection(election), flags,
        [this, dir, election, create_candidate, done, flags, self](const Result& r) {
          if (r.code == Code::kOk || r.code == Code::kNodeExists) return create_candidate();
          if ((r.code == Code::kUnimplemented || r.code == Code::kBadArguments) && flags == CreateMode::kContainer) {
            return self(CreateMode::kPersistent, self);
          }
          if (r.code != Code::kNoNode) return done(toStatus(r.code, "election " + election));
          ensurePath(layout_.elections(), [create_candidate, done, election, flags, self](Code rc) {
            if (rc != Code::kOk) return done(toStatus(rc, "elections"));
            self(flags, self);
          });
        });
  };
  create_parent(CreateMode::kContainer, create_parent);
}

void KeeperBackend::evaluateCandidate(int64_t term, Callback<CampaignResult> first, bool registration) {
  auto it = candidates_.find(term);
  if (it == candidates_.end() || !zk_) {
    if (first) first(absl::FailedPreconditionError("candidacy withdrawn"));
    return;
  }
  const std::string dir = parentOf(it->second.path);
  const int64_t round = it->second.eval_round = next_round_++;
  const int64_t generation = generation_;
  auto current = [this, term, round, generation]() -> Held* {
    auto it = candidates_.find(term);
    if (generation != generation_ || it == candidates_.end() || it->second.eval_round != round) return nullptr;
    return &it->second;
  };
  zk_->children(dir, nullptr, [this, term, first, registration, dir, current, generation](const Result& r) {
    Held* held = current();
    if (held == nullptr) {
      if (!first) return;  // a newer evaluation took over
      if (generation != generation_) return first(expired());
      auto it = candidates_.find(term);
      if (it == candidates_.end()) return first(absl::FailedPreconditionError("candidacy withdrawn"));
      // Superseded: the newest evaluation answers this caller too. Issuing
      // another would supersede that one in turn, and two callers would
      // take turns for ever (two reconnects within one round trip).
      it->second.awaiting.push_back(Caller{first, registration});
      return;
    }
    std::vector<Caller> callers = std::move(held->awaiting);
    held->awaiting.clear();
    if (first) callers.push_back(Caller{first, registration});
    auto order = sequenced(r.children, kCandidatePrefix);
    auto pos = std::find(order.begin(), order.end(), baseOf(held->path));
    if (r.code != Code::kOk || pos == order.end()) {
      const absl::Status why = r.code == Code::kOk
                                   ? absl::UnavailableError("the candidate's node was deleted meanwhile; retry")
                                   : toStatus(r.code, "election");
      const bool registering =
          std::any_of(callers.begin(), callers.end(), [](const Caller& c) { return c.registration; });
      if (registering) {
        // A registration whose standing is unknown is not handed out: its
        // node goes (now, or once reconciled) and the caller may retry.
        // Never so for a candidacy a client was told of: it may be acting
        // on it, within its lease. A verification that fails is answered
        // with the failure; the next reconnect verifies again, and
        // watchOwnCandidate reports a removal.
        std::string path = held->path;
        candidates_.erase(term);
        if (r.code == Code::kOk) {
          removeOwn(path);
        } else {
          uncertain_.insert(path);
        }
      }
      for (auto& caller : callers) caller.done(why);
      return;
    }
    bool was_primary = held->primary;
    held->primary = pos == order.begin();
    const std::string election = held->election;
    const bool primary = held->primary;
    if (!callers.empty()) {
      for (auto& caller : callers) caller.done(Backend::CampaignResult{term, primary});
    } else if (primary && !was_primary) {
      listener_->onCandidacyChanged(election, term, true, false, "");
    }
    held = current();  // a caller may have changed it
    if (held == nullptr) return;
    if (held->primary) {
      held->pred_armed = false;
      held->predecessor.clear();
      return;
    }
    // Watch only the predecessor, and only once: a verification that finds
    // the same one keeps the watch already set.
    const std::string predecessor = dir + "/" + *std::prev(pos);
    if (held->pred_armed && held->predecessor == predecessor) return;
    const int64_t pred_round = held->pred_round = next_round_++;
    held->predecessor = predecessor;
    held->pred_armed = false;
    auto watching = [this, term, pred_round, generation]() -> Held* {
      auto it = candidates_.find(term);
      if (generation != generation_ || it == candidates_.end() || it->second.pred_round != pred_round) return nullptr;
      return &it->second;
    };
    zk_->exists(
        predecessor,
        [this, term, watching](WatchEvent) {
          if (Held* held = watching()) {
            held->pred_armed = false;
            evaluateCandidate(term, nullptr);
          }
        },
        [this, term, watching](const Result& e) {
          Held* held = watching();
          if (held == nullptr) return;
          if (e.code == Code::kNoNode) return evaluateCandidate(term, nullptr);
          held->pred_armed = e.code == Code::kOk;
        });
  });
}

void KeeperBackend::forgetCandidate(int64_t term, const absl::Status& why) {
  auto it = candidates_.find(term);
  if (it == candidates_.end()) return;
  std::vector<Caller> callers = std::move(it->second.awaiting);
  candidates_.erase(it);
  for (auto& caller : callers) caller.done(why);
}

void KeeperBackend::watchOwnCandidate(int64_t term) {
  auto it = candidates_.find(term);
  if (it == candidates_.end()) return;
  const int64_t round = it->second.round = next_round_++;
  it->second.armed = false;
  const int64_t generation = generation_;
  auto current = [this, term, round, generation]() -> Held* {
    auto it = candidates_.find(term);
    if (generation != generation_ || it == candidates_.end() || it->second.round != round) return nullptr;
    return &it->second;
  };
  auto removed = [this, term]() {
    const std::string election = candidates_.find(term)->second.election;
    forgetCandidate(term, absl::UnavailableError("the candidate's node was deleted; retry"));
    if (term == cleaner_term_) {
      cleaner_term_ = 0;
      return campaignCleaner();  // stepped down: stand again, behind the others
    }
    listener_->onCandidacyChanged(election, term, false, true,
                                  absl::StrCat("candidate node deleted in ", options_.name, " (step-down)"));
  };
  zk_->exists(
      it->second.path,
      [this, term, current, removed](WatchEvent type) {
        if (current() == nullptr) return;
        if (type == WatchEvent::kDeleted) return removed();
        watchOwnCandidate(term);
      },
      [current, removed](const Result& r) {
        // Gone before the watch was set; other failures: re-armed on reconnect.
        Held* held = current();
        if (held == nullptr) return;
        if (r.code == Code::kNoNode) return removed();
        held->armed = r.code == Code::kOk;
      });
}

void KeeperBackend::resign(const std::string& election, int64_t term, Done done) {
  whenConnected(done, [this, election, term, done] {
    auto it = candidates_.find(term);
    if (it == candidates_.end()) {
      return done(absl::NotFoundError(absl::StrCat("no candidacy in '", election, "' with term ", term)));
    }
    std::string path = it->second.path;
    forgetCandidate(term, absl::FailedPreconditionError("candidacy withdrawn"));
    // Forgotten here first; a delete whose answer is lost is reconciled.
    owned(path, term, [this, path, election, done](Code rc, bool mine, const Stat& stat) {
      if (rc != Code::kOk && rc != Code::kNoNode) {
        uncertain_.insert(path);
        return done(toStatus(rc, "election " + election));
      }
      if (!mine) return done(absl::NotFoundError("candidate node gone"));
      zk_->remove(path, stat.version, [this, path, election, done](const Result& r) {
        noteIfUncertain(r.code, path);
        done(r.code == Code::kOk ? absl::OkStatus() : toStatus(r.code, "election " + election));
      });
    });
  });
}

void KeeperBackend::verifyCandidacy(const std::string& election, int64_t term, Callback<std::optional<bool>> done) {
  whenConnected(done, [this, term, done] {
    auto it = candidates_.find(term);
    if (it == candidates_.end()) return done(std::optional<bool>());
    owned(it->second.path, term, [this, term, done](Code rc, bool mine, const Stat&) {
      if (rc != Code::kOk && rc != Code::kNoNode) return done(toStatus(rc, "candidate"));
      if (!mine) {
        forgetCandidate(term, absl::UnavailableError("the candidate's node was deleted; retry"));
        return done(std::optional<bool>());
      }
      evaluateCandidate(term, [done](absl::StatusOr<CampaignResult> r) {
        if (!r.ok()) return done(r.status());
        done(std::optional<bool>(r->primary));
      });
    });
  });
}

void KeeperBackend::currentLeader(const std::string& election, Callback<std::optional<Candidate>> done) {
  const std::string dir = layout_.election(election);
  zk_->children(dir, nullptr, [this, dir, election, done](const Result& r) {
    if (r.code == Code::kNoNode) return done(std::optional<Candidate>());
    if (r.code != Code::kOk) return done(toStatus(r.code, "election " + election));
    auto order = sequenced(r.children, kCandidatePrefix);
    if (order.empty()) return done(std::optional<Candidate>());
    zk_->get(dir + "/" + order.front(), [this, election, done](const Result& g) {
      if (g.code == Code::kNoNode) return currentLeader(election, done);  // changed meanwhile
      if (g.code != Code::kOk) return done(toStatus(g.code, "election " + election));
      DecodedNode node = decodeNode(g.data);
      done(std::optional<Candidate>(Candidate{node.owner, node.value, g.stat.czxid}));
    });
  });
}

void KeeperBackend::leader(const std::string& election, Callback<std::optional<Candidate>> done) {
  whenConnected(done, [this, election, done] { currentLeader(election, done); });
}

void KeeperBackend::watchElection(const std::string& election) {
  executor_->post([this, election] {
    watched_.emplace(election, Watched{});
    if (usable().ok()) armElectionWatch(election);
  });
}

void KeeperBackend::unwatchElection(const std::string& election) {
  executor_->post([this, election] { watched_.erase(election); });
}

void KeeperBackend::armElectionWatch(const std::string& election) {
  auto it = watched_.find(election);
  if (it == watched_.end() || !zk_) return;
  const std::string dir = layout_.election(election);
  const int64_t round = it->second.round = next_round_++;
  it->second.armed = false;
  const int64_t generation = generation_;
  auto current = [this, election, round, generation] {
    auto it = watched_.find(election);
    return generation == generation_ && it != watched_.end() && it->second.round == round;
  };
  auto rearm = [this, election, current](WatchEvent) {
    if (current()) armElectionWatch(election);
  };
  auto armed = [this, election, current] {
    if (current()) watched_[election].armed = true;
  };
  zk_->children(dir, rearm, [this, dir, election, rearm, current, armed](const Result& r) {
    if (!current()) return;
    if (r.code == Code::kOk) armed();
    if (r.code == Code::kNoNode) {
      // Learn when it appears; if it just did, watch its children.
      zk_->exists(dir, rearm, [rearm, armed](const Result& e) {
        if (e.code == Code::kOk) rearm(WatchEvent::kCreated);
        if (e.code == Code::kNoNode) armed();
      });
    }
    publishLeader(election);
  });
}

void KeeperBackend::publishLeader(const std::string& election) {
  currentLeader(election, [this, election](absl::StatusOr<std::optional<Candidate>> leader) {
    auto it = watched_.find(election);
    if (!leader.ok() || it == watched_.end()) return;
    int64_t term = leader->has_value() ? (*leader)->term : 0;
    if (it->second.leader_term == term) return;
    it->second.leader_term = term;
    listener_->onLeaderChanged(election, *leader);
  });
}

// --- Admin ------------------------------------------------------------------

void KeeperBackend::listLocks(Callback<std::vector<LockView>> done) {
  whenConnected(done, [this, done] {
    listBucketed(layout_.locks(), [this, done](Code rc, std::vector<std::string> paths) {
      if (rc != Code::kOk) return done(toStatus(rc, "locks"));
      getAll(paths, [done](Code rc, Results results) {
        if (rc != Code::kOk) return done(toStatus(rc, "locks"));
        std::vector<LockView> views;
        for (const auto& r : results) {
          if (r.code != Code::kOk) continue;
          DecodedNode node = decodeNode(r.data);
          views.push_back(
              LockView{node.name.empty() ? baseOf(r.path) : node.name, LockHolder{node.owner, r.stat.czxid}, {}});
        }
        done(views);
      });
    });
  });
}

void KeeperBackend::lockInfo(const std::string& name, Callback<LockView> done) {
  whenConnected(done, [this, name, done] {
    zk_->get(layout_.lock(name), [this, name, done](const Result& held) {
      if (held.code != Code::kOk && held.code != Code::kNoNode) return done(toStatus(held.code, "lock " + name));
      LockView view{name, std::nullopt, {}};
      if (held.code == Code::kOk) view.holder = LockHolder{decodeNode(held.data).owner, held.stat.czxid};
      const std::string queue = layout_.waiterQueue(name);
      zk_->children(queue, nullptr, [this, view, queue, done](const Result& q) mutable {
        if (worst(Code::kOk, q.code) != Code::kOk) return done(toStatus(q.code, "lock queue of " + view.name));
        std::vector<std::string> paths;
        for (const auto& child : sequenced(q.children, kWaiterPrefix)) paths.push_back(queue + "/" + child);
        getAll(paths, [view, done](Code rc, Results waiters) mutable {
          if (rc != Code::kOk) return done(toStatus(rc, "lock queue of " + view.name));
          for (const auto& w : waiters) {
            if (w.code == Code::kOk) view.waiters.push_back(decodeNode(w.data).owner);
          }
          done(view);
        });
      });
    });
  });
}

void KeeperBackend::forceUnlock(const std::string& name, Callback<LockHolder> done) {
  whenConnected(done, [this, name, done] {
    const std::string path = layout_.lock(name);
    zk_->get(path, [this, name, path, done](const Result& g) {
      if (g.code == Code::kNoNode) return done(absl::NotFoundError(absl::StrCat("lock '", name, "' is not held")));
      if (g.code != Code::kOk) return done(toStatus(g.code, "lock " + name));
      LockHolder holder{decodeNode(g.data).owner, g.stat.czxid};
      zk_->remove(path, g.stat.version, [name, holder, done](const Result& r) {
        if (r.code != Code::kOk) return done(toStatus(r.code, "lock " + name));
        done(holder);
      });
    });
  });
}

void KeeperBackend::electionView(const std::string& dir, Callback<ElectionView> done) {
  zk_->get(dir, [this, dir, done](const Result& d) {
    if (d.code != Code::kOk) return done(toStatus(d.code, "election"));
    std::string name = decodeNode(d.data).name;
    zk_->children(dir, nullptr, [this, dir, name, done](const Result& r) {
      if (worst(Code::kOk, r.code) != Code::kOk) return done(toStatus(r.code, "election " + name));
      std::vector<std::string> paths;
      for (const auto& child : sequenced(r.children, kCandidatePrefix)) paths.push_back(dir + "/" + child);
      getAll(paths, [name, done](Code rc, Results candidates) {
        if (rc != Code::kOk) return done(toStatus(rc, "election " + name));
        ElectionView view{name, {}};
        for (const auto& c : candidates) {
          if (c.code != Code::kOk) continue;
          DecodedNode node = decodeNode(c.data);
          view.candidates.push_back(Candidate{node.owner, node.value, c.stat.czxid});
        }
        done(view);
      });
    });
  });
}

void KeeperBackend::listElections(Callback<std::vector<ElectionView>> done) {
  whenConnected(done, [this, done] {
    zk_->children(layout_.elections(), nullptr, [this, done](const Result& r) {
      if (r.code == Code::kNoNode || (r.code == Code::kOk && r.children.empty()))
        return done(std::vector<ElectionView>());
      if (r.code != Code::kOk) return done(toStatus(r.code, "elections"));
      auto views = std::make_shared<std::vector<ElectionView>>();
      auto pending = std::make_shared<size_t>(r.children.size());
      auto failure = std::make_shared<absl::Status>();
      for (const auto& child : r.children) {
        electionView(layout_.elections() + "/" + child,
                     [views, pending, failure, done](absl::StatusOr<ElectionView> view) {
                       if (view.ok() && !view->candidates.empty()) views->push_back(std::move(*view));
                       // An election gone meanwhile is not in the list; any other failure fails it.
                       if (!view.ok() && !absl::IsNotFound(view.status()) && failure->ok()) *failure = view.status();
                       if (--*pending > 0) return;
                       if (!failure->ok()) return done(*failure);
                       done(std::move(*views));
                     });
      }
    });
  });
}

void KeeperBackend::electionInfo(const std::string& election, Callback<ElectionView> done) {
  whenConnected(done, [this, election, done] {
    electionView(layout_.election(election), [election, done](absl::StatusOr<ElectionView> view) {
      if (!view.ok() && absl::IsNotFound(view.status())) return done(ElectionView{election, {}});
      done(view);
    });
  });
}

void KeeperBackend::stepDown(const std::string& election, Callback<Candidate> done) {
  whenConnected(done, [this, election, done] {
    const std::string dir = layout_.election(election);
    zk_->children(dir, nullptr, [this, dir, election, done](const Result& r) {
      // A lost answer is not "no primary": the caller may retry.
      if (r.code != Code::kOk && r.code != Code::kNoNode) return done(toStatus(r.code, "election " + election));
      auto order = sequenced(r.children, kCandidatePrefix);
      if (r.code == Code::kNoNode || order.empty()) {
        return done(absl::NotFoundError(absl::StrCat("election '", election, "' has no primary")));
      }
      const std::string path = dir + "/" + order.front();
      zk_->get(path, [this, path, election, done](const Result& g) {
        if (g.code != Code::kOk) return done(toStatus(g.code, "election " + election));
        DecodedNode node = decodeNode(g.data);
        Candidate primary{node.owner, node.value, g.stat.czxid};
        zk_->remove(path, g.stat.version, [election, primary, done](const Result& rm) {
          if (rm.code != Code::kOk) return done(toStatus(rm.code, "election " + election));
          done(primary);
        });
      });
    });
  });
}

void KeeperBackend::registerMember(const Member& self) {
  executor_->post([this, self] {
    self_ = self;
    if (!usable().ok()) return;
    createMember();
    if (cleaner_term_ == 0) campaignCleaner();
  });
}

void KeeperBackend::createMember() {
  if (!self_) return;
  const std::string path = layout_.member(self_->node_id);
  int64_t generation = generation_;
  createWithParents(path, encodeMember(*self_), CreateMode::kEphemeral, [this, path, generation](const Result& r) {
    if (generation != generation_ || r.code == Code::kOk) return;
    if (r.code != Code::kNodeExists) {
      spdlog::warn("{}: cannot register this daemon: {}", options_.kind, codeName(r.code));
      return;
    }
    // The node of our previous session, not yet expired by the server:
    // register again once it goes.
    zk_->exists(
        path,
        [this, generation](WatchEvent type) {
          if (generation == generation_ && type == WatchEvent::kDeleted) createMember();
        },
        [this, generation](const Result& e) {
          if (generation == generation_ && e.code == Code::kNoNode) createMember();
        });
  });
}

void KeeperBackend::listMembers(Callback<std::vector<Member>> done) {
  whenConnected(done, [this, done] {
    listBucketed(layout_.nodes(), [this, done](Code rc, std::vector<std::string> paths) {
      if (rc != Code::kOk) return done(toStatus(rc, "nodes"));
      getAll(paths, [done](Code rc, Results results) {
        if (rc != Code::kOk) return done(toStatus(rc, "nodes"));
        std::vector<Member> members;
        for (const auto& r : results) {
          if (r.code == Code::kOk) members.push_back(decodeMember(r.data));
        }
        done(members);
      });
    });
  });
}

void KeeperBackend::rearmAll() {
  std::vector<std::pair<std::string, HeldLock>> locks;
  for (const auto& [name, held] : locks_) {
    if (!held.armed) locks.emplace_back(name, held);
  }
  for (const auto& [name, held] : locks) holdLock(name, held.path, held.token);
  std::vector<std::pair<int64_t, bool>> terms;  // term, own watch armed
  for (const auto& [term, held] : candidates_) {
    if (!held.armed || !held.pred_armed) terms.emplace_back(term, held.armed);
  }
  for (const auto& [term, armed] : terms) {
    if (!armed) watchOwnCandidate(term);
    evaluateCandidate(term, nullptr);  // keeps an armed predecessor watch
  }
  std::vector<int64_t> waiters;
  for (const auto& [id, waiter] : waiters_) {
    if (!waiter.armed) waiters.push_back(id);
  }
  for (int64_t id : waiters) evaluateWaiter(id);
  std::vector<std::string> elections;
  for (const auto& [election, watched] : watched_) {
    if (!watched.armed) elections.push_back(election);
  }
  for (const auto& election : elections) armElectionWatch(election);
}

// --- Cleaner ----------------------------------------------------------------

void KeeperBackend::campaignCleaner() {
  if (!self_ || !usable().ok() || cleaner_term_ != 0) return;
  cleaner_term_ = -1;  // registering
  OwnerRecord owner{self_->node_id, "", kCleanerElection, {}};
  int64_t generation = generation_;
  registerCandidate(kCleanerElection, owner, "", 0, [this, generation](absl::StatusOr<CampaignResult> r) {
    if (generation != generation_) return;
    if (!r.ok()) {
      cleaner_term_ = 0;  // the next session, or step-down, tries again
      spdlog::warn("{}: cannot stand in the {} election: {}", options_.kind, kCleanerElection, r.status().ToString());
      return;
    }
    cleaner_term_ = r->term;
  });
}

void KeeperBackend::scheduleCleaner() {
  executor_->postAt(executor_->now() + absl::ToChronoMilliseconds(options_.cleaner_interval), [this] {
    scheduleCleaner();
    auto it = candidates_.find(cleaner_term_);
    if (usable().ok() && it != candidates_.end() && it->second.primary) clean();
  });
}

// One bounded pass: deletes empty persistent parents (lock buckets, waiter
// queues and their buckets, election parents, member buckets), at most
// cleaner_limit, and logs what it did when the last delete answers.
void KeeperBackend::clean() {
  struct Cycle {
    explicit Cycle(int64_t limit) : budget(limit), limit(limit) {}
    ~Cycle() {
      if (removed > 0) spdlog::info("cleaner: cycle removed {} of at most {} empty parents", removed, limit);
    }
    int64_t budget;
    const int64_t limit;
    int64_t removed = 0;
  };
  auto cycle = std::make_shared<Cycle>(options_.cleaner_limit);
  const int64_t generation = generation_;
  // Removes `dir` if it has no children; `then` runs on its children else.
  auto clean_dir = [this, cycle, generation](const std::string& dir, std::function<void(const std::string&)> then) {
    if (generation != generation_ || cycle->budget <= 0) return;
    zk_->children(dir, nullptr, [this, cycle, dir, then, generation](const Result& r) {
      if (r.code != Code::kOk || generation != generation_) return;
      if (r.children.empty()) {
        if (cycle->budget <= 0) return;
        --cycle->budget;
        // ZooKeeper refuses (not empty) if a child came meanwhile: nothing
        // live is ever lost.
        zk_->remove(dir, -1, [this, cycle, dir](const Result& rm) {
          if (rm.code != Code::kOk) return;
          ++cycle->removed;
          options_.metrics->cleaner_deletions.inc();
        });
        return;
      }
      if (then) {
        for (const auto& child : r.children) then(dir + "/" + child);
      }
    });
  };
  auto leaf = [clean_dir](const std::string& dir) { clean_dir(dir, nullptr); };
  auto bucket_of_queues = [clean_dir, leaf](const std::string& dir) { clean_dir(dir, leaf); };
  zk_->children(layout_.locks(), nullptr, [leaf, this](const Result& r) {
    for (const auto& bucket : r.children) leaf(layout_.locks() + "/" + bucket);
  });
  zk_->children(layout_.waiters(), nullptr, [bucket_of_queues, this](const Result& r) {
    for (const auto& bucket : r.children) bucket_of_queues(layout_.waiters() + "/" + bucket);
  });
  zk_->children(layout_.elections(), nullptr, [leaf, this](const Result& r) {
    for (const auto& election : r.children) leaf(layout_.elections() + "/" + election);
  });
  zk_->children(layout_.nodes(), nullptr, [leaf, this](const Result& r) {
    for (const auto& bucket : r.children) leaf(layout_.nodes() + "/" + bucket);
  });
}

// --- Orphans ----------------------------------------------------------------

void KeeperBackend::reconcileUncertain() {
  // Each entry is a node (a lock, a waiter, a candidate), or a queue or
  // election directory whose sequential child may be ours. Whatever this
  // session owns there that nobody claims goes.
  auto claimed = [this](const std::string& path) {
    for (const auto& [name, held] : locks_) {
      if (held.path == path) return true;
    }
    for (const auto& [id, waiter] : waiters_) {
      if (waiter.node == path) return true;
    }
    for (const auto& [term, held] : candidates_) {
      if (held.path == path) return true;
    }
    return false;
  };
  const int64_t generation = generation_;
  auto check = [this, claimed, generation](const std::string& path) {
    zk_->exists(path, nullptr, [this, path, claimed, generation](const Result& r) {
      if (generation != generation_) return;
      noteIfUncertain(r.code, path);  // lost again: next reconnect
      if (r.code == Code::kOk && r.stat.ephemeral_owner == zk_->sessionId() && !claimed(path)) {
        spdlog::info("{}: deleting orphan node {} of this session", options_.kind, path);
        zk_->remove(path, r.stat.version, [this, path, generation](const Result& removed) {
          if (generation != generation_) return;
          noteIfUncertain(removed.code, path);  // lost: the next reconnect tries again
          if (removed.code == Code::kOk) options_.metrics->reconciler_deletions.inc();
        });
      }
    });
  };
  std::set<std::string> entries;
  entries.swap(uncertain_);
  for (const auto& path : entries) {
    const std::string base = baseOf(path);
    bool is_node = path.rfind(layout_.locks(), 0) == 0 || base.rfind(kWaiterPrefix, 0) == 0 ||
                   base.rfind(kCandidatePrefix, 0) == 0;
    if (is_node) {
      check(path);
      continue;
    }
    zk_->children(path, nullptr, [this, path, check, generation](const Result& r) {
      if (generation != generation_) return;
      noteIfUncertain(r.code, path);
      for (const auto& child : r.children) check(path + "/" + child);
    });
  }
}

}  // namespace coordd::backend::recipes
