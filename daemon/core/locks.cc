// Core: locks of client sessions.
#include <limits>

#include "absl/strings/str_cat.h"
#include "coordd/check.h"
#include "core/core.h"
#include "core/status_map.h"
#include "core/validation.h"
#include "spdlog/spdlog.h"

namespace coordd::core {
absl::StatusOr<Core::Session*> Core::admitLock(const std::string& session_id, const std::string& name) {
  auto session = admitNewHold(session_id);
  if (!session.ok()) return session;
  const Session& s = **session;
  if (s.locks.count(name) != 0 || s.waits.count(name) != 0 || s.tries.count(name) != 0) {
    return absl::AlreadyExistsError(absl::StrCat("name: lock '", name, "' is already held or awaited by this session"));
  }
  if (auto admit = admitHold(**session); !admit.ok()) return admit;
  return session;
}

int64_t Core::tryAcquire(const std::string& session_id, const std::string& name, Reply<TryAcquireResult> reply) {
  reply = [reply = std::move(reply), metrics = options_.metrics](absl::StatusOr<TryAcquireResult> result) {
    metrics->acquires.with({"try", !result.ok() ? "error" : result->acquired ? "acquired" : "held"}).inc();
    reply(std::move(result));
  };
  absl::Status refused = validateName("name", name);
  if (!refused.ok()) {
    reply(refused);
    return 0;
  }
  Deferred deferred;
  int64_t call_id = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto session = admitLock(session_id, name);
    if (!session.ok()) {
      deferred.push_back([reply, status = session.status()] { reply(status); });
    } else {
      call_id = next_id_++;
      calls_[call_id] = Call{};
      (*session)->tries.insert(name);
      startTry(PendingTry{session_id, name, call_id, reply}, deferred);
    }
  }
  for (auto& fn : deferred) fn();
  return call_id;
}

void Core::startTry(PendingTry attempt, Deferred& deferred) {
  if (std::optional<backend::LockHolder> holder = localHolder(attempt.name)) {
    // Held through this daemon: the answer needs no round trip.
    return answerTry(attempt, TryAcquireResult{false, 0, std::move(holder)}, deferred);
  }
  auto [queue, first] = locks_.trying.try_emplace(attempt.name);
  if (!first) {
    // Another session's attempt at it is in flight: if that one gets it,
    // this one is answered with it as the holder, else it goes on its own.
    queue->second.queued.push_back(std::move(attempt));
    return;
  }
  queue->second.first_call = attempt.call_id;
  sendTry(std::move(attempt));
}

void Core::sendTry(PendingTry attempt) {
  const Session& session = mustFind(sessions_.live, attempt.session_id);
  const std::string name = attempt.name;
  backend_.tryLock(name, ownerOf(session),
                   [this, attempt = std::move(attempt), epoch = link_.epoch](
                       absl::StatusOr<backend::TryLockResult> result) { onTried(attempt, epoch, std::move(result)); });
}

void Core::onTried(const PendingTry& attempt, int64_t epoch, absl::StatusOr<backend::TryLockResult> result) {
  Deferred deferred;
  {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<PendingTry> queued;
    if (auto q = locks_.trying.find(attempt.name);
        q != locks_.trying.end() && q->second.first_call == attempt.call_id) {
      queued = std::move(q->second.queued);
      locks_.trying.erase(q);
    }
    auto it = sessions_.live.find(attempt.session_id);
    if (it != sessions_.live.end()) it->second.tries.erase(attempt.name);
    auto call = calls_.find(attempt.call_id);
    const bool cancelled = call == calls_.end() || call->second.cancelled;
    // Only a grant is left for callAnswered or cancelCall to end.
    if (call != calls_.end()) calls_.erase(call);
    std::optional<backend::LockHolder> granted;
    if (!result.ok()) {
      deferred.push_back([reply = attempt.reply, status = clientStatus(result.status())] { reply(status); });
    } else if (!result->acquired) {
      deferred.push_back([reply = attempt.reply, holder = result->holder] {
        reply(TryAcquireResult{false, 0, holder});
      });
    } else {
      absl::Status gone;
      if (it == sessions_.live.end()) {
        gone = absl::FailedPreconditionError("session_id: the session ended meanwhile");
      } else if (epoch != link_.epoch || link_.state != backend::LinkState::kConnected) {
        gone = absl::UnavailableError("coordinator link lost while acquiring; retry");
      } else if (cancelled) {
        gone = absl::CancelledError("the caller gave up");
      }
      if (!gone.ok()) {
        // Given back whatever happened meanwhile: the delete checks the
        // token and session.
        deleteLock(attempt.name, result->token, nullptr);
        deferred.push_back([reply = attempt.reply, gone] { reply(gone); });
      } else {
        it->second.locks[attempt.name] = HeldLock{result->token, false};
        locks_.holders[{attempt.name, result->token}] = attempt.session_id;
        calls_[attempt.call_id] = Call{false, true, false, attempt.session_id, attempt.name, result->token};
        sendLock(it->second, attempt.name, LockState::kHeld, result->token, "");
        deferred.push_back([reply = attempt.reply, token = result->token] {
          reply(TryAcquireResult{true, token, std::nullopt});
        });
        granted = backend::LockHolder{ownerOf(it->second), result->token};
      }
    }
    for (PendingTry& next : queued) {
      auto session = sessions_.live.find(next.session_id);
      auto next_call = calls_.find(next.call_id);
      if (granted) {
        // Asked before this grant was answered, while it was in flight:
        // the lock was held by the time of that answer.
        answerTry(next, TryAcquireResult{false, 0, granted}, deferred);
      } else if (session == sessions_.live.end()) {
        answerTry(next, absl::FailedPreconditionError("session_id: the session ended meanwhile"), deferred);
      } else if (next_call == calls_.end() || next_call->second.cancelled) {
        answerTry(next, absl::CancelledError("the caller gave up"), deferred);
      } else if (link_.state != backend::LinkState::kConnected) {
        answerTry(next, absl::UnavailableError("coordinator link lost while acquiring; retry"), deferred);
      } else {
        // All at once, as if none had waited: what this one was refused
        // may be gone by the time they get there.
        sendTry(std::move(next));
      }
    }
  }
  for (auto& fn : deferred) fn();
}

void Core::answerTry(const PendingTry& attempt, absl::StatusOr<TryAcquireResult> result, Deferred& deferred) {
  auto session = sessions_.live.find(attempt.session_id);
  if (session != sessions_.live.end()) session->second.tries.erase(attempt.name);
  calls_.erase(attempt.call_id);
  deferred.push_back([reply = attempt.reply, result = std::move(result)] { reply(result); });
}

std::optional<backend::LockHolder> Core::localHolder(const std::string& name) const {
  auto it = locks_.holders.lower_bound({name, std::numeric_limits<int64_t>::min()});
  if (it == locks_.holders.end() || it->first.first != name) return std::nullopt;
  auto session = sessions_.live.find(it->second);
  if (session == sessions_.live.end()) return std::nullopt;
  auto held = session->second.locks.find(name);
  // A hold in doubt (the link was lost or is not confirmed, the hold is
  // being verified) may be gone.
  if (held == session->second.locks.end() || held->second.token != it->first.second || held->second.suspended ||
      !linkSure()) {
    return std::nullopt;
  }
  return backend::LockHolder{ownerOf(session->second), held->second.token};
}

int64_t Core::acquire(const std::string& session_id, const std::string& name, std::chrono::milliseconds timeout,
                      Reply<int64_t> reply) {
  reply = [reply = std::move(reply), metrics = options_.metrics](absl::StatusOr<int64_t> result) {
    const char* outcome = result.ok() ? "acquired" : absl::IsDeadlineExceeded(result.status()) ? "timeout" : "error";
    metrics->acquires.with({"wait", outcome}).inc();
    reply(std::move(result));
  };
  absl::Status refused = validateName("name", name);
  if (refused.ok()) refused = validateTimeout(timeout);
  if (!refused.ok()) {
    reply(refused);
    return 0;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto session = admitLock(session_id, name);
    if (!session.ok()) {
      refused = session.status();
    } else {
      int64_t waiter_id = next_id_++;
      (*session)->waits[name] = waiter_id;
      locks_.waiting[waiter_id] =
          PendingAcquire{session_id, name, now() + timeout, link_.epoch, std::move(reply), std::nullopt, false};
      backend_.lock(name, ownerOf(**session), waiter_id,
                    [this, waiter_id, name](absl::StatusOr<int64_t> token) { onAcquired(waiter_id, name, token); });
      return waiter_id;
    }
  }
  reply(refused);
  return 0;
}

void Core::onAcquired(int64_t waiter_id, const std::string& name, absl::StatusOr<int64_t> token) {
  Deferred deferred;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = locks_.waiting.find(waiter_id);
    if (it == locks_.waiting.end()) {
      // Nobody waits any more (timeout, cancel, session end): give it back.
      if (token.ok()) deleteLock(name, *token, nullptr);
      return;
    }
    if (token.ok() && it->second.epoch == link_.epoch && link_.state == backend::LinkState::kSuspended) {
      // Granted in the session the wait began in, before the link is known
      // again (the first session is back, the watch session not yet): held
      // until the reconnect verifies it, so that a blip costs the waiter
      // neither its turn nor its place; an expiry fails it.
      it->second.granted = *token;
      return;
    }
    PendingAcquire pending = std::move(it->second);
    locks_.waiting.erase(it);
    // endSession answers a session's waiters before it goes, so it is here.
    mustFind(sessions_.live, pending.session_id).waits.erase(name);
    if (!token.ok()) {
      deferred.push_back([reply = pending.reply, status = clientStatus(token.status())] { reply(status); });
    } else if (pending.epoch != link_.epoch || link_.state != backend::LinkState::kConnected) {
      // The coordinator session the lock was granted in is gone: never
      // answer "acquired" then (etcd #11456).
      deleteLock(name, *token, nullptr);
      deferred.push_back(
          [reply = pending.reply] { reply(absl::UnavailableError("coordinator link lost while acquiring; retry")); });
    } else {
      grantAcquire(waiter_id, pending, *token, deferred);
    }
  }
  for (auto& fn : deferred) fn();
}

void Core::onGrantVerified(int64_t waiter_id, int64_t token, absl::StatusOr<bool> holds) {
  Deferred deferred;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = locks_.waiting.find(waiter_id);
    if (it == locks_.waiting.end() || it->second.granted != token) return;
    it->second.verifying = false;
    // Suspended again: the next reconnect verifies it, an expiry fails it.
    if (link_.state != backend::LinkState::kConnected) return;
    if (!holds.ok()) return verifyAgainLater();
    PendingAcquire pending = std::move(it->second);
    locks_.waiting.erase(it);
    mustFind(sessions_.live, pending.session_id).waits.erase(pending.name);
    if (*holds) {
      grantAcquire(waiter_id, pending, token, deferred);
    } else {
      deferred.push_back([reply = pending.reply, name = pending.name] {
        reply(absl::UnavailableError(
            absl::StrCat("lock '", name,
                         "' was granted while the coordinator link was suspended and lost before it was back; retry")));
      });
    }
  }
  for (auto& fn : deferred) fn();
}

void Core::grantAcquire(int64_t waiter_id, const PendingAcquire& pending, int64_t token, Deferred& deferred) {
  Session& session = mustFind(sessions_.live, pending.session_id);
  session.locks[pending.name] = HeldLock{token, false};
  locks_.holders[{pending.name, token}] = session.id;
  calls_[waiter_id] = Call{false, true, false, session.id, pending.name, token};
  sendLock(session, pending.name, LockState::kHeld, token, "");
  deferred.push_back([reply = pending.reply, token] { reply(token); });
}

void Core::finishAcquire(int64_t waiter_id, absl::Status status, Deferred& deferred) {
  auto it = locks_.waiting.find(waiter_id);
  if (it == locks_.waiting.end()) return;
  PendingAcquire pending = std::move(it->second);
  locks_.waiting.erase(it);
  auto session = sessions_.live.find(pending.session_id);
  if (session != sessions_.live.end()) session->second.waits.erase(pending.name);
  if (pending.granted) {
    deleteLock(pending.name, *pending.granted, nullptr);  // granted, never told: given back
  } else {
    // If the lock is granted meanwhile, onAcquired finds no waiter and gives
    // it back.
    removeWaiter(pending.name, waiter_id);
  }
  deferred.push_back([reply = pending.reply, status] { reply(status); });
}

void Core::cancelCall(int64_t call_id) {
  Deferred deferred;
  {
    std::lock_guard<std::mutex> lock(mu_);
    finishAcquire(call_id, absl::DeadlineExceededError("acquire cancelled by the client"), deferred);
    auto it = calls_.find(call_id);
    if (it != calls_.end() && !it->second.granted) {
      it->second.cancelled = true;  // its answer gives back what it got
    } else if (it != calls_.end()) {
      // Granted, but the caller gave up first: nobody will act on it. gRPC
      // can cancel a call after its answer went out: should the caller have
      // read the grant after all, it is told, as of any loss.
      const Call call = std::move(it->second);
      calls_.erase(it);
      if (call.candidacy) {
        withdrawCandidacy(call.session_id, call.name, call.token, "the campaign was cancelled by its caller");
      } else {
        giveBackLock(call.session_id, call.name, call.token);
      }
    }
  }
  for (auto& fn : deferred) fn();
}

void Core::giveBackLock(const std::string& session_id, const std::string& name, int64_t token) {
  auto session = sessions_.live.find(session_id);
  if (session == sessions_.live.end()) return;
  auto& locks = session->second.locks;
  auto held = locks.find(name);
  if (held == locks.end() || held->second.token != token) return;
  locks.erase(held);
  locks_.holders.erase({name, token});
  deleteLock(name, token, nullptr);
  countLost("acquire_cancelled");
  sendLock(session->second, name, LockState::kLost, token, "the acquire was cancelled by its caller");
}

void Core::callAnswered(int64_t call_id) {
  std::lock_guard<std::mutex> lock(mu_);
  calls_.erase(call_id);
}

void Core::release(const std::string& session_id, const std::string& name, StatusReply reply, int64_t only_token) {
  absl::Status refused = validateName("name", name);
  if (refused.ok()) {
    std::lock_guard<std::mutex> lock(mu_);
    auto session = findSession(session_id);
    if (!session.ok()) {
      refused = session.status();
    } else {
      auto held = (*session)->locks.find(name);
      if (held == (*session)->locks.end() || (only_token != 0 && held->second.token != only_token)) {
        refused = absl::NotFoundError(absl::StrCat("name: lock '", name, "' is not held by this session"));
      } else {
        int64_t token = held->second.token;
        (*session)->locks.erase(held);
        locks_.holders.erase({name, token});
        spdlog::info("lock RELEASED: name={:?} owner={:?} session={} token={}", name, (*session)->owner,
                     (*session)->public_id, token);
        deleteLock(name, token, [reply] { reply(absl::OkStatus()); });
        return;
      }
    }
  }
  reply(refused);
}

absl::StatusOr<CheckResult> Core::check(const std::string& session_id, const std::string& name) {
  if (auto status = validateName("name", name); !status.ok()) return status;
  std::lock_guard<std::mutex> lock(mu_);
  auto session = findSession(session_id);
  if (!session.ok()) return session.status();
  auto held = (*session)->locks.find(name);
  if (held == (*session)->locks.end()) return CheckResult{LockState::kNotHeld, 0};
  bool in_doubt = held->second.suspended || !linkSure();
  return CheckResult{in_doubt ? LockState::kSuspended : LockState::kHeld, held->second.token};
}

void Core::onLockLost(const std::string& name, int64_t token, const std::string& reason) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = locks_.holders.find({name, token});
  if (it == locks_.holders.end()) return;
  auto session = sessions_.live.find(it->second);
  locks_.holders.erase(it);
  if (session == sessions_.live.end()) return;
  session->second.locks.erase(name);
  countLost("node_deleted");
  sendLock(session->second, name, LockState::kLost, token, reason);
}

}  // namespace coordd::core
