#include <algorithm>
#include <iterator>
#include <utility>

#include "absl/strings/str_cat.h"
#include "session_core.h"

// The KeepAlive stream of a session: pings, the lease and its watchdog, and
// applying the daemon's events.

namespace coordd::detail {
namespace {

// Heartbeats echo the latest ping; older ones are forgotten.
constexpr size_t kRememberPings = 16;

}  // namespace

bool SessionCore::sendPing(v1::KeepAliveRequest request) {
  const uint64_t id = next_ping_id_++;
  request.set_ping_id(id);
  // Noted before sending: the lease then runs from no later than the
  // daemon's receipt.
  pings_sent_.emplace_back(id, Clock::now());
  if (pings_sent_.size() > kRememberPings) pings_sent_.pop_front();
  return stream_->Write(request);
}

bool SessionCore::onHeartbeat(const v1::Heartbeat& heartbeat) {
  std::lock_guard<std::mutex> lock(mu_);
  if (heartbeat.keepalive_window_ms() > 0) window_ = absl::Milliseconds(heartbeat.keepalive_window_ms());
  if (!first_heartbeat_) {
    first_heartbeat_ = true;
    started_.notify_all();
  }
  if (heartbeat.lease_ms() <= 0) return false;
  auto sent = std::find_if(pings_sent_.begin(), pings_sent_.end(),
                           [&](const auto& ping) { return ping.first == heartbeat.ping_id(); });
  if (sent == pings_sent_.end()) return false;
  const Clock::time_point until = sent->second + std::chrono::milliseconds(heartbeat.lease_ms());
  const Clock::time_point exclusive = until + std::chrono::milliseconds(std::max<int64_t>(0, heartbeat.margin_ms()));
  if (until.time_since_epoch().count() <= lease_until_.load()) return false;
  exclusive_until_.store(std::max(exclusive_until_.load(), exclusive.time_since_epoch().count()));
  lease_until_.store(until.time_since_epoch().count());
  // The renewal ends a silence here, together with the lease, not once the
  // batch is applied: open() returns on the first heartbeat, and what it
  // then acquires must not read as answered during a silence (the loop goes
  // silent at once while no heartbeat has come yet).
  if (silent_ && leased()) {
    silent_ = false;
    resync_needed_ = true;
  }
  return true;
}

void SessionCore::readLoop() {
  for (;;) {
    Incoming item{Incoming::Kind::kMessage, {}, {}};
    if (!stream_->Read(&item.message)) break;
    std::lock_guard<std::mutex> lock(mu_);
    incoming_.push_back(std::move(item));
    wake_.notify_one();
  }
  std::lock_guard<std::mutex> lock(mu_);
  incoming_.push_back(Incoming{Incoming::Kind::kEnd, {}, {}});
  wake_.notify_one();
}

void SessionCore::post(Notes notes) {
  if (notes.empty()) return;
  std::lock_guard<std::mutex> lock(mu_);
  if (ended_.load()) return;  // the end already reported the final states
  incoming_.push_back(Incoming{Incoming::Kind::kNotes, {}, std::move(notes)});
  wake_.notify_one();
}

void SessionCore::eventLoop() {
  const auto ping_every = absl::ToChronoNanoseconds(ping_interval_);
  Clock::time_point next_ping = Clock::now() + ping_every;
  for (;;) {
    std::deque<Incoming> batch;
    bool went_silent = false;
    {
      std::unique_lock<std::mutex> lock(mu_);
      while (incoming_.empty()) {
        const Clock::time_point now = Clock::now();
        Clock::time_point wake_at = next_ping;
        if (!silent_) {
          const Clock::time_point silent_at{Clock::duration(lease_until_.load())};
          if (now >= silent_at) {
            silent_ = went_silent = true;
            break;
          }
          wake_at = std::min(wake_at, silent_at);
        }
        if (now >= wake_at) break;
        // The condition variable waits on CLOCK_MONOTONIC, which stops while
        // the host is suspended: after a resume this wakes late by up to a
        // ping interval (the longest wait). States read from the handles
        // check the lease on BootClock as they are read, never late.
        wake_.wait_until(lock, wake_at);
      }
      batch.swap(incoming_);
    }

    Notes notes;
    if (went_silent) suspendAll(kLeaseExpired, notes);
    for (Incoming& item : batch) {
      switch (item.kind) {
        case Incoming::Kind::kMessage:
          handle(item.message, notes);
          break;
        case Incoming::Kind::kNotes:
          std::move(item.notes.begin(), item.notes.end(), std::back_inserter(notes));
          break;
        case Incoming::Kind::kEnd: {
          const grpc::Status stream_status = stream_->Finish();
          std::string why;
          {
            std::lock_guard<std::mutex> lock(mu_);
            why = closing_ ? "closed by client"
                           : absl::StrCat("KeepAlive stream broke: ", toStatus(*endpoint_, stream_status).ToString());
          }
          endSession(std::move(why), notes);
          runNotes(notes);
          return;
        }
      }
    }
    // After a silence, re-check only right after a renewal: the daemon is
    // answering now.
    const bool renewed = leased() && std::any_of(batch.begin(), batch.end(), [](const Incoming& item) {
                           return item.kind == Incoming::Kind::kMessage && item.message.has_heartbeat();
                         });
    if (resync_needed_ && renewed) resync_needed_ = !recheckAll(notes);
    runNotes(notes);

    if (Clock::now() >= next_ping) {
      // A failed write means the stream broke; the reader reports that.
      sendPing(v1::KeepAliveRequest());
      next_ping = Clock::now() + ping_every;
    }
  }
}

void SessionCore::handle(const v1::KeepAliveResponse& message, Notes& notes) {
  switch (message.kind_case()) {
    case v1::KeepAliveResponse::kHeartbeat:
      if (onHeartbeat(message.heartbeat()) && options_.on_lease) {
        notes.push_back([callback = options_.on_lease, lease = lease()] { callback(lease); });
      }
      if (message.heartbeat().link() == v1::LINK_STATE_SUSPENDED ||
          message.heartbeat().link() == v1::LINK_STATE_EXPIRED) {
        // For every hold at once (the daemon sends no event per hold): the
        // lease ends now, as if it had run out. (Such a heartbeat carries no
        // lease, so it renewed nothing above.)
        goSilent("coordinator link suspended", notes);
      }
      break;
    case v1::KeepAliveResponse::kLock:
      onLockEvent(message.lock(), notes);
      break;
    case v1::KeepAliveResponse::kElection:
      onElectionEvent(message.election(), notes);
      break;
    case v1::KeepAliveResponse::kEnded:
      // The daemon has ended the session: its locks and candidacies are gone
      // now, not only once the stream closes.
      endSession(message.ended().reason().empty() ? "ended by coordd" : message.ended().reason(), notes);
      break;
    case v1::KeepAliveResponse::KIND_NOT_SET:
      break;
  }
}

void SessionCore::onLockEvent(const v1::LockEvent& event, Notes& notes) {
  std::shared_ptr<LockEntry> entry;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = locks_held_.find(event.name());
    if (it == locks_held_.end()) return;
    entry = it->second;
  }
  bool lost = false;
  {
    std::lock_guard<std::mutex> lock(entry->mu);
    if (entry->pending) {
      entry->early = event;
      return;
    }
    // An event about an earlier holding of the same name is stale.
    if (event.fencing_token() != 0 && event.fencing_token() != entry->token.load()) return;
    ++entry->version;
    setLockState(*entry, toLockState(event.state()), event.reason(), notes);
    lost = entry->state.load() == LockState::kLost;
  }
  if (lost) unregisterLock(*entry);
}

void SessionCore::onElectionEvent(const v1::ElectionEvent& event, Notes& notes) {
  std::shared_ptr<ElectionEntry> entry;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = candidacies_.find(event.election());
    if (it == candidacies_.end()) return;
    entry = it->second;
  }
  std::lock_guard<std::mutex> lock(entry->mu);
  // Late news of a candidacy this session resigned or replaced.
  if (entry->candidacy != 0 && event.candidacy() != entry->candidacy) return;
  ++entry->version;
  setElectionState(*entry, ElectionState{toElectionStatus(event.status()), event.term(), event.reason()}, notes);
}

void SessionCore::goSilent(const std::string& reason, Notes& notes) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (silent_) return;
    silent_ = true;
    // The margin is not cut short: the coordinator still keeps the session.
    lease_until_.store(std::min(lease_until_.load(), Clock::now().time_since_epoch().count()));
  }
  suspendAll(reason, notes);
}

void SessionCore::suspendAll(const std::string& reason, Notes& notes) {
  std::map<std::string, std::shared_ptr<LockEntry>> locks;
  std::map<std::string, std::shared_ptr<ElectionEntry>> candidacies;
  {
    std::lock_guard<std::mutex> lock(mu_);
    locks = locks_held_;
    candidacies = candidacies_;
  }
  // Answers requested before the silence are stale after it: bumping the
  // versions keeps them from undoing the suspension.
  for (auto& [name, entry] : locks) {
    std::lock_guard<std::mutex> lock(entry->mu);
    ++entry->version;
    if (!entry->pending && entry->state.load() == LockState::kHeld) {
      setLockState(*entry, LockState::kSuspended, reason, notes);
    }
  }
  for (auto& [name, entry] : candidacies) {
    std::lock_guard<std::mutex> lock(entry->mu);
    ++entry->version;
    if (entry->status.load() == ElectionStatus::kPrimary) {
      setElectionState(*entry, ElectionState{ElectionStatus::kSuspended, entry->term.load(), reason}, notes);
    }
  }
}

bool SessionCore::recheckAll(Notes& notes) {
  std::map<std::string, std::shared_ptr<LockEntry>> locks;
  std::map<std::string, std::shared_ptr<ElectionEntry>> candidacies;
  {
    std::lock_guard<std::mutex> lock(mu_);
    locks = locks_held_;
    candidacies = candidacies_;
  }
  // Bounded, so that pings and the watchdog are not starved; what is left
  // is re-checked after the next message.
  const Clock::time_point give_up = Clock::now() + absl::ToChronoNanoseconds(checkTimeout());
  for (auto& [name, entry] : locks) {
    uint64_t version = 0;
    {
      std::lock_guard<std::mutex> lock(entry->mu);
      if (entry->pending || isFinal(entry->state.load())) continue;
      version = entry->version;
    }
    if (Clock::now() >= give_up) return false;
    v1::CheckRequest request;
    request.set_session_id(id_);
    request.set_name(name);
    v1::CheckResponse response;
    const absl::Status status = unary(*endpoint_, checkTimeout(), [&](grpc::ClientContext* context) {
      return locks_->Check(context, request, &response);
    });
    if (!status.ok()) return false;
    bool lost = false;
    {
      std::lock_guard<std::mutex> lock(entry->mu);
      if (entry->version != version) continue;
      ++entry->version;
      const bool ours = response.fencing_token() == entry->token.load();
      LockState state = ours ? toLockState(response.state()) : LockState::kLost;
      setLockState(*entry, state,
                   state == LockState::kLost ? "not held by this session after a silence of coordd"
                                             : "coordinator link suspended",
                   notes);
      lost = entry->state.load() == LockState::kLost;
    }
    if (lost) unregisterLock(*entry);
  }
  for (auto& [name, entry] : candidacies) {
    uint64_t version = 0;
    {
      std::lock_guard<std::mutex> lock(entry->mu);
      if (entry->closed) continue;
      version = entry->version;
    }
    if (Clock::now() >= give_up) return false;
    absl::StatusOr<ElectionState> answer = statusRpc(*entry);
    if (!answer.ok()) return false;
    applyAnswer(*entry, version, *answer, notes);
  }
  return true;
}

void SessionCore::endSession(std::string why, Notes& notes) {
  // mu_ is held throughout so that nothing is registered meanwhile, and the
  // final states are set before ended_ publishes the end.
  std::lock_guard<std::mutex> lock(mu_);
  if (ended_.load()) return;
  end_reason_ = std::move(why);
  const std::string reason = absl::StrCat("session ended: ", end_reason_);
  for (auto& [name, entry] : locks_held_) {
    if (entry->abandoned.load()) continue;  // its caller was told it failed: no callback
    std::lock_guard<std::mutex> entry_lock(entry->mu);
    setLockState(*entry, LockState::kLost, reason, notes);
  }
  for (auto& [name, entry] : candidacies_) {
    std::lock_guard<std::mutex> entry_lock(entry->mu);
    setElectionState(*entry, ElectionState{ElectionStatus::kTerminated, entry->term.load(), reason}, notes);
    entry->closed = true;
  }
  locks_held_.clear();
  candidacies_.clear();
  ended_.store(true);
  started_.notify_all();
  if (options_.on_ended) {
    notes.push_back([callback = options_.on_ended, why = end_reason_] { callback(why); });
  }
}

}  // namespace coordd::detail
