#include "backend/recipes/keeper_backend.h"

#include <future>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "backend/keeper/batching_keeper.h"
#include "backend/keeper/guarded_keeper.h"
#include "backend/recipes/internal.h"
#include "spdlog/spdlog.h"

namespace coordd::backend::recipes {

KeeperBackend::KeeperBackend(KeeperOptions options)
    : options_(std::move(options)),
      layout_(options_.root),
      own_executor_(options_.executor == nullptr ? std::make_unique<SerialExecutor>() : nullptr),
      executor_(options_.executor != nullptr ? options_.executor : own_executor_.get()) {
  info_ = BackendInfo{options_.kind, "", "", options_.session_timeout, ""};
}

KeeperBackend::~KeeperBackend() { stop(); }

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
    connectWatcher();
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
    for (auto& release : parkedReleases()) release(absl::UnavailableError("daemon shutting down"));
    for (auto& [term, held] : candidates_) {
      auto callers = std::move(held.awaiting);
      held.awaiting.clear();
      for (auto& caller : callers) caller.done(absl::UnavailableError("daemon shutting down"));
    }
    zk_.reset();  // closes the session: the ephemeral nodes go at once
    ++watcher_generation_;
    watcher_up_ = false;
    watcher_.reset();
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
  // Lock creates asked while one is in flight go as one multi (group
  // commit). And answers and watches of this session that come after stop()
  // or a newer session read kClosing: no chain of calls goes on past them.
  auto batching = std::make_unique<keeper::BatchingKeeper>(
      std::move(*client), [this](std::function<void()> task) { executor_->post(std::move(task)); });
  zk_ = std::make_unique<keeper::GuardedKeeper>(std::move(batching),
                                                [this, generation] { return generation == generation_; });
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
    reportLink(LinkState::kSuspended);
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
    reportLink(LinkState::kReconnected);
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
        if (rc != Code::kOk && !keeper::uncertain(rc)) {
          spdlog::error("{}: cannot create the chroot {}: {}", options_.kind, layout_.root(), codeName(rc));
        }
        // The first lease comes before CONNECTED, so that the first holds are
        // vouched for at once.
        const auto sent = executor_->now();
        zk_->sync(rootPath(), [this, generation, sent](const Result& r) {
          if (generation != generation_) return;
          opening_ = false;
          if (keeper::uncertain(r.code)) return;  // the next CONNECTED tries again
          if (r.code == Code::kOk) confirmed(sent);
          link_ = Link::kConnected;
          reportLink(LinkState::kConnected);
          createMember();
          campaignCleaner();
          probeLoop(generation);
        });
      });
    } else if (link_ == Link::kSuspended) {
      link_ = Link::kConnected;
      lapsed_ = false;
      reportLink(LinkState::kReconnected);
      reconcileUncertain();
      rearmAll();
      campaignCleaner();  // if its registration failed while away
      probe();
    }
  } else if (state == SessionState::kConnecting) {
    if (link_ != Link::kConnected) return;
    link_ = Link::kSuspended;
    int64_t suspension = ++suspensions_;
    reportLink(LinkState::kSuspended);
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
  std::vector<Done> releases = parkedReleases();
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
  for (auto& release : releases) release(expired());
  for (auto& [term, held] : candidates) {
    for (auto& caller : held.awaiting) caller.done(expired());
  }
  reportLink(LinkState::kExpired);
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
  if (keeper::uncertain(rc)) uncertain_.insert(path);
}

void KeeperBackend::removeOwn(const std::string& path) {
  int64_t generation = generation_;
  zk_->remove(path, -1, [this, path, generation](const Result& r) {
    if (generation == generation_ && r.code != Code::kOk && r.code != Code::kNoNode) uncertain_.insert(path);
  });
}

bool KeeperBackend::isOurs(const Stat& stat, int64_t token) const {
  return stat.czxid == token && zk_ && stat.ephemeral_owner == zk_->sessionId();
}

void KeeperBackend::owned(const std::string& path, int64_t token,
                          std::function<void(Code rc, bool owned, const Stat&)> done) {
  zk_->exists(path, nullptr, [this, token, done](const Result& r) {
    done(r.code, r.code == Code::kOk && isOurs(r.stat, token), r.stat);
  });
}

void KeeperBackend::getAll(std::vector<std::string> paths, std::function<void(Code rc, Results)> done) {
  if (paths.empty()) return done(Code::kOk, {});
  auto fan_in = std::make_shared<FanIn<Results, Code>>(paths.size(), std::move(done), Results(paths.size()));
  for (size_t i = 0; i < paths.size(); ++i) {
    zk_->get(paths[i], [fan_in, i, path = paths[i]](const Result& r) {
      fan_in->answer(r.code, [&](Results& results) {
        results[i] = r;
        results[i].path = path;
      });
    });
  }
}

void KeeperBackend::listBucketed(const std::string& root, std::function<void(Code rc, std::vector<std::string>)> done) {
  zk_->children(root, nullptr, [this, root, done](const Result& buckets) {
    if (buckets.code == Code::kNoNode || (buckets.code == Code::kOk && buckets.children.empty()))
      return done(Code::kOk, {});
    if (buckets.code != Code::kOk) return done(buckets.code, {});
    auto fan_in = std::make_shared<FanIn<std::vector<std::string>, Code>>(buckets.children.size(), done);
    for (const auto& bucket : buckets.children) {
      zk_->children(root + "/" + bucket, nullptr, [fan_in, dir = root + "/" + bucket](const Result& leaves) {
        fan_in->answer(leaves.code, [&](std::vector<std::string>& paths) {
          for (const auto& leaf : leaves.children) paths.push_back(dir + "/" + leaf);
        });
      });
    }
  });
}
}  // namespace coordd::backend::recipes
