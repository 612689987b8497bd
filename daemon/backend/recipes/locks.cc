// Locks and FIFO waiters.
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "backend/recipes/internal.h"
#include "spdlog/spdlog.h"

namespace coordd::backend::recipes {

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
      holdLock(name, path, r.stat);
      return done(TryLockResult{true, r.stat.czxid, std::nullopt});
    }
    noteIfUncertain(r.code, path);
    if (r.code != Code::kNodeExists) return done(toStatus(r.code, "lock " + name));
    getFresh(path, [=](const Result& g) {
      if (generation != generation_) return done(expired());
      if (g.code == Code::kNoNode) {
        if (attempt < 3) return attemptLock(name, owner, attempt + 1, done);  // released meanwhile
        // Taken at each of its creates and freed again before each read:
        // held at every try, by whom there is no telling.
        return done(TryLockResult{false, 0, std::nullopt});
      }
      if (g.code != Code::kOk) return done(toStatus(g.code, "lock " + name));
      DecodedNode node = decodeNode(g.data);
      if (node.owner.node_id.empty()) node.owner.label = "(foreign node without an owner record)";
      done(TryLockResult{false, 0, LockHolder{node.owner, g.stat.czxid}});
    });
  });
}

void KeeperBackend::holdLock(const std::string& name, const std::string& path, const Stat& created) {
  // An older hold of this lock through this daemon is gone, or the node
  // could not have been created again (its delete's event is still on its
  // way): its holder is told, and a Release waiting for its watch answered.
  std::optional<HeldLock> older;
  if (auto it = locks_.find(name); it != locks_.end()) older = std::move(it->second);
  locks_[name] = HeldLock{path, created.czxid, created.version};
  if (older) {
    listener_->onLockLost(name, older->token, absl::StrCat("lock node deleted in ", options_.name));
    if (older->release) older->release(notHeld(name, older->token));
  }
  // Someone else deleting the node (an admin) makes the lock LOST.
  watchLock(name);
}

void KeeperBackend::unlock(const std::string& name, int64_t token, Done done) {
  whenConnected(done, [this, name, token, done] {
    auto it = locks_.find(name);
    if (it == locks_.end() || it->second.token != token) return removeIfOwned(name, token, done);
    if (it->second.arming && !it->second.release) {
      // The watch's exists is on its way (a Release right after the
      // acquire): its answer tells whether the node is still ours, sooner
      // than a read in the first session would.
      it->second.release = done;
      return;
    }
    releaseHeld(it, done);
  });
}

void KeeperBackend::releaseHeld(std::map<std::string, HeldLock>::iterator it, Done done) {
  if (Done waiting = std::exchange(it->second.release, nullptr)) {
    // Another Release of it waited for the watch: both get this answer.
    done = [waiting = std::move(waiting), done = std::move(done)](absl::Status status) {
      waiting(status);
      done(status);
    };
  }
  const std::string name = it->first;
  const int64_t token = it->second.token;
  const bool watched = it->second.armed && watcher_up_;
  const std::string path = it->second.path;
  const int32_t version = it->second.version;
  locks_.erase(it);
  // Unwatched, a foreign delete may have gone unheard: check first.
  if (!watched) return removeIfOwned(name, token, done);
  // Watched, the hold is known to be ours until a delete's event says
  // otherwise: one delete, no read. ZooKeeper deletes by version only (and
  // lock nodes have version 0 or 1), so another's node of the same version
  // whose event is still on its way (an admin freed the lock and another
  // daemon took it, within this round trip) goes too, and that holder's
  // watch tells it LOST (RELIABILITY.md).
  zk_->remove(path, version, [this, name, token, path, done](const Result& r) {
    noteIfUncertain(r.code, path);  // lost: the reconciler deletes it if it is still ours
    if (r.code == Code::kOk) return done(absl::OkStatus());
    if (r.code == Code::kNoNode || r.code == Code::kBadVersion) return done(notHeld(name, token));
    done(toStatus(r.code, "lock " + name));
  });
}

std::vector<Done> KeeperBackend::parkedReleases() {
  std::vector<Done> releases;
  for (auto& [name, held] : locks_) {
    if (held.release) releases.push_back(std::exchange(held.release, nullptr));
  }
  return releases;
}

void KeeperBackend::settleRelease(const std::string& name) {
  auto it = locks_.find(name);
  if (it == locks_.end() || it->second.arming || !it->second.release) return;
  releaseHeld(it, std::exchange(it->second.release, nullptr));
}

void KeeperBackend::removeIfOwned(const std::string& name, int64_t token, Done done) {
  const std::string path = layout_.lock(name);
  owned(path, token, [this, name, token, path, done](Code rc, bool mine, const Stat& stat) {
    if (rc != Code::kOk && rc != Code::kNoNode) return done(toStatus(rc, "lock " + name));
    if (!mine) return done(notHeld(name, token));
    // As above: a hold taken between the check and the delete goes too.
    zk_->remove(path, stat.version, [this, name, path, done](const Result& r) {
      noteIfUncertain(r.code, path);
      done(r.code == Code::kOk ? absl::OkStatus() : toStatus(r.code, "lock " + name));
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
                          noteIfUncertain(r.code, queue);
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
  it->second.armed = false;
  // The waiter, if this is still its latest evaluation.
  auto current = newRound(waiters_, waiter_id, &Waiter::round);
  zk_->children(queue, nullptr, [this, waiter_id, queue, current](const Result& r) {
    Waiter* waiter = current();
    if (waiter == nullptr) return;
    // A lost answer: the connection drops with it, and the reconnect
    // evaluates the waiter again, its node and FIFO place kept.
    if (keeper::uncertain(r.code)) return;
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
                        // Lost: evaluated again after the reconnect, which
                        // also removes the node should the create have been
                        // applied (nobody claims it).
                        noteIfUncertain(c.code, path);
                        if (keeper::uncertain(c.code)) return;
                        if (c.code != Code::kOk) return finishWaiter(waiter_id, toStatus(c.code, "lock " + name));
                        holdLock(name, path, c.stat);
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
}  // namespace coordd::backend::recipes
