// The watch session: a second keeper session that holds no nodes, so that
// the watches and reads in it never wait behind the first session's writes.
#include "absl/strings/str_format.h"
#include "backend/keeper/guarded_keeper.h"
#include "backend/recipes/internal.h"
#include "spdlog/spdlog.h"

namespace coordd::backend::recipes {
namespace {

bool isUp(const std::optional<LinkState>& state) {
  return state == LinkState::kConnected || state == LinkState::kReconnected;
}

}  // namespace

void KeeperBackend::reportLink(LinkState state) {
  switch (state) {
    case LinkState::kExpired:
      main_up_ = false;
      new_session_untold_ = false;
      told_ = state;
      return listener_->onLinkState(state);
    case LinkState::kSuspended:
      main_up_ = false;
      if (!isUp(told_)) return;  // suspended already
      told_ = state;
      return listener_->onLinkState(state);
    case LinkState::kConnected:
      new_session_untold_ = true;
      [[fallthrough]];
    case LinkState::kReconnected:
      main_up_ = true;
      return tellUp();
  }
}

void KeeperBackend::tellUp() {
  if (!main_up_ || !watcher_up_ || isUp(told_)) return;
  // A new session's CONNECTED is what the listener must hear first, even if
  // the session reconnected since.
  told_ = new_session_untold_ ? LinkState::kConnected : LinkState::kReconnected;
  new_session_untold_ = false;
  listener_->onLinkState(*told_);
}

void KeeperBackend::watcherUp(bool up) {
  if (up == watcher_up_) return;
  watcher_up_ = up;
  if (up) {
    // Set the watches that are not, then tell what the first session said.
    std::vector<std::string> names;
    for (const auto& [name, held] : locks_) {
      if (!held.armed) names.push_back(name);
    }
    for (const auto& name : names) watchLock(name);
    return tellUp();
  }
  if (!isUp(told_)) return;
  // Nobody would hear of a foreign delete meanwhile: what is held is in
  // doubt until the watch session is back, and then verified (RECONNECTED).
  spdlog::warn("{}: the watch session lost contact; suspended until it is back", options_.kind);
  told_ = LinkState::kSuspended;
  listener_->onLinkState(LinkState::kSuspended);
}

void KeeperBackend::connectWatcher() {
  if (stopped_) return;
  const int64_t generation = ++watcher_generation_;
  watcherUp(false);
  const keeper::KeeperFactory& open = options_.open_watch_session ? options_.open_watch_session : options_.open_session;
  auto session = open([this](std::function<void()> task) { executor_->post(std::move(task)); },
                      [this, generation](SessionState state) { onWatcherSession(generation, state); });
  if (!session.ok()) {
    spdlog::error("{}: watch session: {}; retrying in 1s", options_.kind, session.status().ToString());
    executor_->postAt(executor_->now() + std::chrono::seconds(1), [this] { connectWatcher(); });
    return;
  }
  watcher_ = std::make_unique<keeper::GuardedKeeper>(std::move(*session),
                                                     [this, generation] { return generation == watcher_generation_; });
}

void KeeperBackend::onWatcherSession(int64_t generation, SessionState state) {
  if (generation != watcher_generation_ || !watcher_) return;
  switch (state) {
    case SessionState::kConnected: {
      {
        std::lock_guard<std::mutex> lock(info_mu_);
        info_.watch_session = absl::StrFormat("0x%x", watcher_->sessionId());
      }
      // The server keeps the watches set through a session across its
      // reconnects, and fires those whose node went meanwhile before it
      // answers anything asked after: once this sync is answered, every
      // watch still set is one that has not fired.
      watcher_->sync(rootPath(), [this, generation](const Result& synced) {
        if (generation != watcher_generation_ || synced.code != Code::kOk) return;  // the next CONNECTED syncs
        watcherUp(true);
      });
      return;
    }
    case SessionState::kConnecting:
      return watcherUp(false);
    case SessionState::kExpired:
    case SessionState::kAuthFailed:
      // It held nothing: only its watches are gone, set again in the next one.
      spdlog::warn("{}: the watch session ended ({}); opening a new one", options_.kind,
                   state == SessionState::kExpired ? "expired" : "credentials refused");
      // Its answers will not come: a Release waiting for one goes now.
      std::vector<std::string> waiting;
      for (auto& [name, held] : locks_) {
        held.armed = false;
        held.arming = false;
        if (held.release) waiting.push_back(name);
      }
      watcherUp(false);
      watcher_.reset();
      for (const auto& name : waiting) settleRelease(name);
      {
        std::lock_guard<std::mutex> lock(info_mu_);
        info_.watch_session.clear();
      }
      if (state == SessionState::kExpired) return connectWatcher();
      executor_->postAt(executor_->now() + std::chrono::seconds(5), [this, generation] {
        if (generation == watcher_generation_) connectWatcher();
      });
      return;
  }
}

void KeeperBackend::getFresh(const std::string& path, Keeper::Done done) {
  if (!watcher_up_) return zk_->get(path, std::move(done));
  // The watch session may be served by another server than the first one:
  // synced, it has seen everything the first session's answers showed.
  watcher_->sync(path, [this, path, done = std::move(done)](const Result& synced) {
    if (synced.code != Code::kOk) {
      if (!zk_) return done(synced);
      return zk_->get(path, done);
    }
    watcher_->get(path, done);
  });
}

void KeeperBackend::watchLock(const std::string& name) {
  auto it = locks_.find(name);
  if (it == locks_.end()) return;
  it->second.armed = false;  // set again once both sessions are up
  it->second.arming = watcher_up_;
  if (!watcher_up_) return settleRelease(name);
  const std::string path = it->second.path;
  const int64_t token = it->second.token;
  // The lock, if this is still its latest watch.
  auto current = newRound(locks_, name, &HeldLock::round);
  // The watch session saw the node go, or another's in its place. Whether
  // it is an admin's delete or this daemon's own session expiring, which the
  // first session has not heard of yet, the first session tells: if it
  // cannot answer, its own state change settles the lock: an expiry, or a
  // reconnect, which watches the lock again (rearmAll).
  auto lost = [this, name, path, token, current]() {
    owned(path, token, [this, name, token, current](Code rc, bool mine, const Stat&) {
      HeldLock* held = current();
      if (held == nullptr) return;
      if (rc != Code::kOk && rc != Code::kNoNode) return settleRelease(name);
      if (mine) return watchLock(name);
      Done release = std::move(held->release);
      locks_.erase(name);
      listener_->onLockLost(name, token, absl::StrCat("lock node deleted in ", options_.name));
      if (release) release(notHeld(name, token));
    });
  };
  // The watch session must see the node the first one made. On the same
  // server it does (the server applied the create before it answered it);
  // on another one, a sync sent first makes the exists, which the server
  // answers after it, wait until that server has caught up. Either way a
  // node that looks gone or another's is confirmed by the first session
  // (lost()). A failure leaves the watch unset: set once the session is back.
  if (!zk_ || watcher_->server() != zk_->server()) watcher_->sync(path, [](const Result&) {});
  watcher_->exists(
      path,
      [this, name, current, lost](WatchEvent type) {
        HeldLock* held = current();
        if (held == nullptr) return;
        held->armed = false;  // fired: no watch is set until the next one
        if (type == WatchEvent::kDeleted) return lost();
        watchLock(name);  // changed: watch again
      },
      [this, name, token, current, lost](const Result& r) {
        HeldLock* held = current();
        if (held == nullptr) return;
        held->arming = false;
        // Gone before the watch was set, or deleted and created anew by
        // someone else (ABA): the watch would sit on another's node.
        if (r.code == Code::kNoNode) return lost();
        if (r.code == Code::kOk && !isOurs(r.stat, token)) return lost();
        held->armed = r.code == Code::kOk;
        settleRelease(name);
      });
}

}  // namespace coordd::backend::recipes
