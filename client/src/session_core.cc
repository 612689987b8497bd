#include "session_core.h"

#include <unistd.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "coordd/admin.h"

// The calls of a session and its shared state; session_events.cc has the
// KeepAlive stream.

namespace coordd::detail {
namespace {

bool isGone(const absl::Status& status) { return absl::IsNotFound(status) || absl::IsFailedPrecondition(status); }

// A lock or campaign call that failed so may have been granted all the
// same: the caller's deadline came before the answer, or the answer was
// lost on the way. The daemon keeps such a grant for the session, which
// does not know it has it.
bool outcomeUnknown(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kCancelled:
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kUnknown:
    case absl::StatusCode::kInternal:
      return true;
    default:
      return false;
  }
}

absl::Status abandonedError(absl::string_view kind, absl::string_view name) {
  return absl::UnavailableError(absl::StrCat(
      kind, " ", name,
      ": an earlier call's outcome is unknown and so is that of giving it back; this session cannot ask for it "
      "again (open a new session)"));
}

constexpr char kSilentReason[] = "answered while the lease from coordd has run out";

}  // namespace

bool isFinal(LockState state) { return state == LockState::kLost || state == LockState::kReleased; }

void setLockState(LockEntry& entry, LockState state, std::string reason, Notes& notes) {
  const LockState old = entry.state.load();
  if (isFinal(old) || old == state) return;
  entry.state.store(state);
  entry.reason = state == LockState::kHeld ? std::string() : std::move(reason);
  if (entry.on_change) {
    notes.push_back([callback = entry.on_change, state, why = entry.reason] { callback(state, why); });
  }
}

void setElectionState(ElectionEntry& entry, const ElectionState& next, Notes& notes) {
  if (entry.closed) return;
  if (entry.status.load() == next.status && entry.term.load() == next.term) return;
  // The term first: a reader that sees the new status sees its term too.
  entry.term.store(next.term);
  entry.status.store(next.status);
  entry.reason = next.reason;
  if (entry.on_change) notes.push_back([callback = entry.on_change, next] { callback(next); });
}

void runNotes(Notes& notes) {
  for (auto& note : notes) note();
  notes.clear();
}

SessionCore::SessionCore(std::shared_ptr<const Endpoint> endpoint, SessionOptions options)
    : endpoint_(std::move(endpoint)),
      options_(std::move(options)),
      sessions_(v1::Sessions::NewStub(endpoint_->channel)),
      locks_(v1::Locks::NewStub(endpoint_->channel)),
      elections_(v1::Elections::NewStub(endpoint_->channel)) {}

SessionCore::~SessionCore() {
  close().IgnoreError();
  // A close() from a callback could not join the event thread it ran on.
  if (events_.joinable()) {
    if (events_.get_id() == std::this_thread::get_id()) {
      events_.detach();  // its loop is over; only the thread's exit is left
    } else {
      events_.join();
    }
  }
}

absl::StatusOr<std::shared_ptr<SessionCore>> SessionCore::open(std::shared_ptr<const Endpoint> endpoint,
                                                               SessionOptions options) {
  std::shared_ptr<SessionCore> core(new SessionCore(std::move(endpoint), std::move(options)));
  v1::OpenRequest request;
  request.set_owner(core->options_.owner);
  request.set_ttl_ms(absl::ToInt64Milliseconds(core->options_.ttl));
  request.mutable_attributes()->insert(core->options_.attributes.begin(), core->options_.attributes.end());
  request.set_client_pid(::getpid());
  for (int pid : core->options_.guard_pids) request.add_guard_pids(pid);
  v1::OpenResponse response;
  absl::Status status = unary(*core->endpoint_, kCallTimeout, [&](grpc::ClientContext* context) {
    return core->sessions_->Open(context, request, &response);
  });
  if (!status.ok()) return status;

  core->id_ = response.session_id();
  core->node_id_ = response.node_id();
  // Guard against a daemon that reports zeros: that would spin.
  const absl::Duration ttl = response.ttl_ms() > 0 ? absl::Milliseconds(response.ttl_ms()) : core->options_.ttl;
  const absl::Duration window =
      response.keepalive_window_ms() > 0 ? absl::Milliseconds(response.keepalive_window_ms()) : ttl;
  core->ping_interval_ = std::max(window / 3, absl::Milliseconds(100));
  {
    std::lock_guard<std::mutex> lock(core->mu_);
    core->window_ = window;
  }

  core->stream_ = core->sessions_->KeepAlive(&core->stream_context_);
  v1::KeepAliveRequest first;
  first.set_session_id(core->id_);
  if (!core->sendPing(std::move(first))) {
    const absl::Status broken = toStatus(*core->endpoint_, core->stream_->Finish());
    // The session exists without a stream: end it now rather than after its ttl.
    core->closeRpc().IgnoreError();
    return broken.ok() ? absl::UnavailableError("coordd closed the KeepAlive stream at once") : broken;
  }
  core->reader_ = std::thread([raw = core.get()] { raw->readLoop(); });
  // The event thread keeps its session alive until its loop is over: the
  // last reference may then go on that thread (a callback that held a
  // guard), and the destructor does not join the thread it runs on.
  core->events_ = std::thread([self = core] { self->eventLoop(); });
  // The daemon answers the first ping at once: with its lease, a lock taken
  // right away reads HELD. Without an answer the session starts suspended.
  std::unique_lock<std::mutex> lock(core->mu_);
  core->started_.wait_for(lock, absl::ToChronoNanoseconds(kCallTimeout), [&] { return core->started(); });
  return core;
}

Lease SessionCore::lease() const {
  const Clock::time_point valid_until{Clock::duration(lease_until_.load())};
  const Clock::time_point exclusive_until{Clock::duration(exclusive_until_.load())};
  return Lease{valid_until, std::max(valid_until, exclusive_until)};
}

absl::Duration SessionCore::window() const {
  std::lock_guard<std::mutex> lock(mu_);
  return window_;
}

std::string SessionCore::endReason() const {
  std::lock_guard<std::mutex> lock(mu_);
  return ended_.load() ? end_reason_ : std::string();
}

absl::Duration SessionCore::checkTimeout() const {
  return std::clamp(window() / 3, absl::Milliseconds(100), kCallTimeout);
}

absl::Status SessionCore::closeRpc(absl::Duration timeout) {
  v1::CloseRequest request;
  request.set_session_id(id_);
  v1::CloseResponse response;
  absl::Status status = unary(
      *endpoint_, timeout, [&](grpc::ClientContext* context) { return sessions_->Close(context, request, &response); });
  return isGone(status) ? absl::OkStatus() : status;
}

absl::Status SessionCore::close() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closing_) return absl::OkStatus();
    closing_ = true;
    for (grpc::ClientContext* context : blocking_) context->TryCancel();
  }
  bool silent = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    silent = silent_;
  }
  // A daemon that has been silent may not answer Close either: it is asked
  // briefly. It ends the session anyway once it sees this process gone, or
  // the ttl run out: a cancelled stream alone frees nothing while the process
  // lives.
  absl::Status status = ended_.load() ? absl::OkStatus() : closeRpc(silent ? checkTimeout() : kCallTimeout);
  if (silent) status = absl::OkStatus();
  // After Close the daemon ends the stream itself; cancelling covers a daemon
  // that is gone or hung.
  stream_context_.TryCancel();
  if (reader_.joinable()) reader_.join();
  // From a callback, on the event thread: it ends by itself once this
  // returns (the stream has ended); the destructor joins it.
  if (events_.joinable() && events_.get_id() != std::this_thread::get_id()) events_.join();
  return status;
}

absl::Status SessionCore::sessionUsable() const {
  if (ended_.load()) return absl::FailedPreconditionError(absl::StrCat("session ", id_, " has ended: ", end_reason_));
  if (closing_) return absl::FailedPreconditionError(absl::StrCat("session ", id_, " is closing"));
  return absl::OkStatus();
}

// --- Locks -------------------------------------------------------------------

absl::StatusOr<std::shared_ptr<LockEntry>> SessionCore::registerLock(std::string name, LockCallback on_change) {
  std::lock_guard<std::mutex> lock(mu_);
  if (absl::Status usable = sessionUsable(); !usable.ok()) return usable;
  auto [it, inserted] = locks_held_.try_emplace(name);
  if (!inserted && it->second->abandoned.load()) return abandonedError("lock", name);
  if (!inserted) return absl::AlreadyExistsError(absl::StrCat("this session already holds or awaits lock ", name));
  it->second = std::make_shared<LockEntry>(std::move(name), std::move(on_change));
  return it->second;
}

void SessionCore::unregisterLock(const LockEntry& entry) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = locks_held_.find(entry.name);
  if (it != locks_held_.end() && it->second.get() == &entry) locks_held_.erase(it);
}

void SessionCore::completeLock(LockEntry& entry, int64_t token) {
  bool lost = false;
  {
    // mu_ is held throughout so that the silence cannot end between reading
    // silent_ and settling the state: the re-check after it then sees this
    // entry no longer pending.
    std::lock_guard<std::mutex> session_lock(mu_);
    std::lock_guard<std::mutex> lock(entry.mu);
    entry.token.store(token);
    entry.pending = false;
    // The caller learns this state from the guard it gets: no callbacks.
    Notes unused;
    if (entry.early && entry.early->fencing_token() == token) {
      setLockState(entry, toLockState(entry.early->state()), entry.early->reason(), unused);
    }
    entry.early.reset();
    // The daemon is still silent: it may not keep the lock, and nothing
    // else would suspend it. The re-check after the silence restores it.
    if (silent_ && entry.state.load() == LockState::kHeld) {
      setLockState(entry, LockState::kSuspended, kSilentReason, unused);
    }
    lost = entry.state.load() == LockState::kLost;
  }
  if (lost) unregisterLock(entry);
}

absl::StatusOr<AcquireOutcome> SessionCore::tryLock(std::string name, LockCallback on_change) {
  absl::StatusOr<std::shared_ptr<LockEntry>> entry = registerLock(std::move(name), std::move(on_change));
  if (!entry.ok()) return entry.status();
  v1::TryAcquireRequest request;
  request.set_session_id(id_);
  request.set_name((*entry)->name);
  v1::TryAcquireResponse response;
  const absl::Status status = unary(*endpoint_, kCallTimeout, [&](grpc::ClientContext* context) {
    return locks_->TryAcquire(context, request, &response);
  });
  if (!status.ok() || !response.acquired()) {
    if (outcomeUnknown(status)) {
      giveBack(**entry);
    } else {
      unregisterLock(**entry);
    }
    if (!status.ok()) return status;
    return AcquireOutcome{nullptr, coordd::toOwner(response.holder())};
  }
  completeLock(**entry, response.fencing_token());
  return AcquireOutcome{*std::move(entry), {}};
}

absl::StatusOr<std::shared_ptr<LockEntry>> SessionCore::lock(std::string name, absl::Duration timeout,
                                                             LockCallback on_change) {
  if (timeout < absl::Milliseconds(1)) return absl::InvalidArgumentError("lock timeout must be at least 1ms");
  absl::StatusOr<std::shared_ptr<LockEntry>> entry = registerLock(std::move(name), std::move(on_change));
  if (!entry.ok()) return entry.status();
  const std::string& lock_name = (*entry)->name;
  v1::AcquireRequest request;
  request.set_session_id(id_);
  request.set_name(lock_name);
  request.set_timeout_ms(absl::ToInt64Milliseconds(timeout));
  v1::AcquireResponse response;
  // The daemon answers DEADLINE_EXCEEDED itself at `timeout`; our own
  // deadline only covers a daemon that does not answer at all.
  grpc::ClientContext context;
  setTimeout(context, timeout + kCallTimeout);
  const auto cancelled_error = [&] {
    return absl::CancelledError(absl::StrCat("session closed while waiting for lock ", lock_name));
  };
  bool closed_first = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    closed_first = closing_;
    if (!closed_first) blocking_.insert(&context);
  }
  if (closed_first) {
    unregisterLock(**entry);
    return cancelled_error();
  }
  const grpc::Status rpc = locks_->Acquire(&context, request, &response);
  bool closing = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    blocking_.erase(&context);
    closing = closing_;
  }
  const absl::Status status = toStatus(*endpoint_, rpc);
  if (!status.ok()) {
    const bool closed = closing && absl::IsCancelled(status);  // closing the session releases everything
    // A DEADLINE_EXCEEDED before our own deadline is the daemon's: no grant.
    const bool daemon_timeout =
        absl::IsDeadlineExceeded(status) && std::chrono::system_clock::now() < context.deadline();
    if (!closed && !daemon_timeout && outcomeUnknown(status)) {
      giveBack(**entry);
    } else {
      unregisterLock(**entry);
    }
    return closed ? cancelled_error() : status;
  }
  completeLock(**entry, response.fencing_token());
  return *std::move(entry);
}

absl::Status SessionCore::release(LockEntry& entry) {
  {
    std::lock_guard<std::mutex> lock(entry.mu);
    if (entry.pending || isFinal(entry.state.load())) return absl::OkStatus();
    entry.state.store(LockState::kReleased);
    entry.reason.clear();
  }
  unregisterLock(entry);
  if (ended_.load()) return absl::OkStatus();  // ending the session released it
  const absl::Status status = releaseRpc(entry.name, kCallTimeout);
  return isGone(status) ? absl::OkStatus() : status;
}

absl::Status SessionCore::releaseRpc(const std::string& name, absl::Duration timeout) {
  v1::ReleaseRequest request;
  request.set_session_id(id_);
  request.set_name(name);
  v1::ReleaseResponse response;
  return unary(*endpoint_, timeout,
               [&](grpc::ClientContext* context) { return locks_->Release(context, request, &response); });
}

void SessionCore::giveBack(LockEntry& entry) {
  // Still registered: this session cannot ask for the lock again meanwhile.
  // NOT_FOUND: there was no grant.
  if (outcomeUnknown(releaseRpc(entry.name, kCallTimeout))) {
    // This Release may yet be carried out: were the name free for another
    // acquire, it could release that one. The daemon keeps the lock until
    // the session ends.
    entry.abandoned.store(true);
    return;
  }
  unregisterLock(entry);
}

// --- Elections ---------------------------------------------------------------

void SessionCore::unregisterElection(const ElectionEntry& entry) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = candidacies_.find(entry.name);
  if (it != candidacies_.end() && it->second.get() == &entry) candidacies_.erase(it);
}

bool SessionCore::applyAnswer(ElectionEntry& entry, uint64_t version, const ElectionState& answer, Notes& notes) {
  // As in completeLock: mu_ keeps the silence from ending meanwhile.
  std::lock_guard<std::mutex> session_lock(mu_);
  std::lock_guard<std::mutex> lock(entry.mu);
  if (entry.version != version) return false;
  ++entry.version;
  if (silent_ && answer.status == ElectionStatus::kPrimary) {
    // Nothing would suspend it again during this silence; the re-check
    // after it restores PRIMARY.
    setElectionState(entry, ElectionState{ElectionStatus::kSuspended, answer.term, kSilentReason}, notes);
  } else {
    setElectionState(entry, answer, notes);
  }
  return true;
}

absl::StatusOr<std::shared_ptr<ElectionEntry>> SessionCore::campaign(std::string election, std::string value,
                                                                     CampaignOptions options) {
  std::shared_ptr<ElectionEntry> entry;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (absl::Status usable = sessionUsable(); !usable.ok()) return usable;
    auto [it, inserted] = candidacies_.try_emplace(election);
    if (!inserted && it->second->abandoned.load()) return abandonedError("election", election);
    if (!inserted) return absl::AlreadyExistsError(absl::StrCat("this session already campaigns in ", election));
    it->second = std::make_shared<ElectionEntry>(std::move(election), std::move(value), options.rejoin,
                                                 std::move(options.on_change));
    entry = it->second;
  }
  absl::StatusOr<ElectionState> answer = campaignRpc(*entry);
  if (!answer.ok()) {
    if (outcomeUnknown(answer.status())) {
      giveBack(*entry);
    } else {
      unregisterElection(*entry);
    }
    return answer.status();
  }
  // Without events during the call, the answer is the first state; the
  // caller sees it: no callbacks.
  Notes unused;
  if (!applyAnswer(*entry, 0, *answer, unused)) {
    // Events came during the call. They are matched by name only, so they
    // may be about an earlier candidacy in this election (resigned just
    // before): ask the daemon where this one stands. Should that fail, the
    // events' word stands until the next event or checkStatus().
    checkStatus(*entry).status().IgnoreError();
  }
  return entry;
}

absl::StatusOr<ElectionState> SessionCore::checkStatus(ElectionEntry& entry) {
  uint64_t version = 0;
  {
    std::lock_guard<std::mutex> lock(entry.mu);
    if (entry.closed) return ElectionState{entry.status.load(), entry.term.load(), entry.reason};
    version = entry.version;
  }
  absl::StatusOr<ElectionState> answer = statusRpc(entry);
  if (!answer.ok()) return answer.status();
  Notes notes;
  applyAnswer(entry, version, *answer, notes);
  post(std::move(notes));
  return answer;
}

absl::Status SessionCore::rejoin(ElectionEntry& entry) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (absl::Status usable = sessionUsable(); !usable.ok()) return usable;
  }
  uint64_t version = 0;
  int64_t candidacy = 0;
  {
    std::lock_guard<std::mutex> lock(entry.mu);
    if (entry.closed) return absl::FailedPreconditionError(absl::StrCat("resigned from ", entry.name));
    version = entry.version;
    candidacy = entry.candidacy;
  }
  absl::StatusOr<ElectionState> answer = campaignRpc(entry);
  if (absl::IsAlreadyExists(answer.status())) {
    // The daemon rejoined already: the candidacy is the one it was (unless
    // a concurrent rejoin() learnt of a newer one meanwhile).
    {
      std::lock_guard<std::mutex> lock(entry.mu);
      if (entry.candidacy == 0) entry.candidacy = candidacy;
    }
    return checkStatus(entry).status();
  }
  if (!answer.ok()) return answer.status();
  Notes notes;
  applyAnswer(entry, version, *answer, notes);
  post(std::move(notes));
  return absl::OkStatus();
}

absl::StatusOr<ElectionState> SessionCore::campaignRpc(ElectionEntry& entry) {
  {
    // Until the answer says which candidacy this is, every event in the
    // election is taken as about it (the version check sorts them out).
    std::lock_guard<std::mutex> lock(entry.mu);
    entry.candidacy = 0;
  }
  v1::CampaignRequest request;
  request.set_session_id(id_);
  request.set_election(entry.name);
  request.set_value(entry.value);
  request.set_rejoin(entry.rejoin);
  v1::CampaignResponse response;
  const absl::Status status = unary(*endpoint_, kCallTimeout, [&](grpc::ClientContext* context) {
    return elections_->Campaign(context, request, &response);
  });
  if (!status.ok()) return status;
  {
    std::lock_guard<std::mutex> lock(entry.mu);
    entry.candidacy = response.candidacy();
  }
  return ElectionState{toElectionStatus(response.status()), response.term(), ""};
}

absl::StatusOr<ElectionState> SessionCore::statusRpc(const ElectionEntry& entry) {
  v1::StatusRequest request;
  request.set_session_id(id_);
  request.set_election(entry.name);
  v1::StatusResponse response;
  const absl::Status status = unary(*endpoint_, checkTimeout(), [&](grpc::ClientContext* context) {
    return elections_->Status(context, request, &response);
  });
  if (!status.ok()) return status;
  return ElectionState{toElectionStatus(response.status()), response.term(), response.reason()};
}

absl::Status SessionCore::resign(ElectionEntry& entry) {
  {
    std::lock_guard<std::mutex> lock(entry.mu);
    if (entry.closed) return absl::OkStatus();
    entry.closed = true;
    entry.status.store(ElectionStatus::kNotCandidate);
    entry.reason = "resigned";
  }
  unregisterElection(entry);
  if (ended_.load()) return absl::OkStatus();  // ending the session withdrew it
  const absl::Status status = resignRpc(entry.name, kCallTimeout);
  return isGone(status) ? absl::OkStatus() : status;
}

absl::Status SessionCore::resignRpc(const std::string& election, absl::Duration timeout) {
  v1::ResignRequest request;
  request.set_session_id(id_);
  request.set_election(election);
  v1::ResignResponse response;
  return unary(*endpoint_, timeout,
               [&](grpc::ClientContext* context) { return elections_->Resign(context, request, &response); });
}

void SessionCore::giveBack(ElectionEntry& entry) {
  // As for a lock.
  if (outcomeUnknown(resignRpc(entry.name, kCallTimeout))) {
    {
      std::lock_guard<std::mutex> lock(entry.mu);
      entry.closed = true;  // nobody holds its handle: its events change nothing
    }
    entry.abandoned.store(true);
    return;
  }
  unregisterElection(entry);
}

}  // namespace coordd::detail
