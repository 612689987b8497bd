#pragma once

// Internal: the state behind Session, LockGuard and Election, and the
// KeepAlive machinery that keeps it current.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "coordd/session.h"
#include "rpc.h"

namespace coordd::detail {

using Clock = BootClock;

// Callback invocations collected under a lock and run after releasing it.
using Notes = std::vector<std::function<void()>>;

struct LockEntry {
  LockEntry(std::string name_in, LockCallback on_change_in)
      : name(std::move(name_in)), on_change(std::move(on_change_in)) {}

  const std::string name;
  const LockCallback on_change;
  std::atomic<LockState> state{LockState::kHeld};
  std::atomic<int64_t> token{0};

  std::mutex mu;
  std::string reason ABSL_GUARDED_BY(mu);
  // The acquire call is in flight: the token is not known yet, so an event
  // cannot be matched and is kept in `early` until it is.
  bool pending ABSL_GUARDED_BY(mu) = true;
  std::optional<v1::LockEvent> early ABSL_GUARDED_BY(mu);
  // Daemon reports applied so far; a Check answer is applied only if no
  // event overtook it.
  uint64_t version ABSL_GUARDED_BY(mu) = 0;
  // The acquire's outcome is unknown and so is its give-back's: the entry
  // stays, so that no later acquire of the name in this session can meet
  // that Release.
  std::atomic<bool> abandoned{false};
};

struct ElectionEntry {
  ElectionEntry(std::string name_in, std::string value_in, bool rejoin_in, ElectionCallback on_change_in)
      : name(std::move(name_in)), value(std::move(value_in)), rejoin(rejoin_in), on_change(std::move(on_change_in)) {}

  const std::string name;
  const std::string value;
  const bool rejoin;
  const ElectionCallback on_change;
  std::atomic<ElectionStatus> status{ElectionStatus::kNotCandidate};
  std::atomic<int64_t> term{0};

  std::mutex mu;
  std::string reason ABSL_GUARDED_BY(mu);
  // Resigned, or the session ended: nothing changes any more.
  bool closed ABSL_GUARDED_BY(mu) = false;
  uint64_t version ABSL_GUARDED_BY(mu) = 0;  // as in LockEntry
  // The daemon's id of this candidacy, from the Campaign answer; events of
  // another are about an earlier candidacy in this election. 0: unknown.
  int64_t candidacy ABSL_GUARDED_BY(mu) = 0;
  std::atomic<bool> abandoned{false};  // as in LockEntry
};

// Why HELD/PRIMARY reads as SUSPENDED once the lease has run out.
inline constexpr char kLeaseExpired[] = "lease expired: coordd has not renewed it in time";

bool isFinal(LockState state);
// Sets a lock's state unless it is final; a change queues its callback.
void setLockState(LockEntry& entry, LockState state, std::string reason, Notes& notes)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(entry.mu);
// Sets a candidacy's state unless it is closed; a change queues its callback.
void setElectionState(ElectionEntry& entry, const ElectionState& next, Notes& notes)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(entry.mu);
// Runs and clears `notes`; call with no lock held.
void runNotes(Notes& notes);

// Outcome of an acquire: `entry` when acquired, else `holder`.
struct AcquireOutcome {
  std::shared_ptr<LockEntry> entry;
  Owner holder;
};

// One client session: its calls (session_core.cc) and its KeepAlive stream
// (session_events.cc). Shared by Session, LockGuard and Election.
//
// NOTE: simplifying assumptions.
// * The lease: every ping carries an id and the daemon echoes the latest in
//   its heartbeats with a lease; the lease runs from when that ping was sent,
//   so a late or stale heartbeat can only shorten it. HELD and PRIMARY read
//   as SUSPENDED once it has run out, whether or not the event thread has run
//   since (the accessors compare the clock themselves).
// * Two threads per session: the reader only reads the KeepAlive stream; the
//   event thread pings, runs the watchdog, applies events, re-checks after a
//   silence and runs every callback, so callbacks never run concurrently.
//   A silence is the lease running out; it ends when a heartbeat renews it.
//   State changed by a caller's round trip (checkStatus, rejoin) has its
//   callbacks posted to the event thread.
// * The re-check after a silence runs on the event thread and delays later
//   events by its round trips; queued events are applied after it, in order,
//   so the final state is the daemon's latest word.
// * A fresh answer to a call (acquire, campaign, status) does not end a
//   silence: during one, HELD/PRIMARY answers are applied as SUSPENDED, as
//   nothing would suspend them again, and the re-check after it restores them.
// * Lock order: mu_ before an entry's mu; callbacks run with no lock held.
class SessionCore {
 public:
  // Sessions.Open, then the KeepAlive stream and its two threads.
  static absl::StatusOr<std::shared_ptr<SessionCore>> open(std::shared_ptr<const Endpoint> endpoint,
                                                           SessionOptions options);
  ~SessionCore();

  const std::string& id() const { return id_; }
  const std::string& nodeId() const { return node_id_; }
  absl::Duration window() const;
  bool ended() const { return ended_.load(); }
  // The lease has not run out: HELD and PRIMARY may be acted on. Lock-free.
  bool leased() const { return Clock::now().time_since_epoch().count() < lease_until_.load(); }
  Lease lease() const;
  std::string endReason() const;
  absl::Status close();

  absl::StatusOr<AcquireOutcome> tryLock(std::string name, LockCallback on_change);
  absl::StatusOr<std::shared_ptr<LockEntry>> lock(std::string name, absl::Duration timeout, LockCallback on_change);
  absl::Status release(LockEntry& entry);

  absl::StatusOr<std::shared_ptr<ElectionEntry>> campaign(std::string election, std::string value,
                                                          CampaignOptions options);
  absl::StatusOr<ElectionState> checkStatus(ElectionEntry& entry);
  absl::Status rejoin(ElectionEntry& entry);
  absl::Status resign(ElectionEntry& entry);

 private:
  // Work for the event thread.
  struct Incoming {
    enum class Kind { kMessage, kNotes, kEnd } kind;
    v1::KeepAliveResponse message;  // kMessage
    Notes notes;                    // kNotes: callbacks due from a caller's thread
  };

  SessionCore(std::shared_ptr<const Endpoint> endpoint, SessionOptions options);

  absl::Status sessionUsable() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<std::shared_ptr<LockEntry>> registerLock(std::string name, LockCallback on_change);
  void unregisterLock(const LockEntry& entry);
  // The acquire call answered with `token`: settle events that came early.
  void completeLock(LockEntry& entry, int64_t token);
  void unregisterElection(const ElectionEntry& entry);
  // Applies a daemon answer requested at `version`, unless an event
  // overtook it (then false).
  bool applyAnswer(ElectionEntry& entry, uint64_t version, const ElectionState& answer, Notes& notes);
  absl::Status closeRpc(absl::Duration timeout = kCallTimeout);
  // Campaign; on its answer, the entry knows which candidacy it is.
  absl::StatusOr<ElectionState> campaignRpc(ElectionEntry& entry);
  absl::StatusOr<ElectionState> statusRpc(const ElectionEntry& entry);
  absl::Status releaseRpc(const std::string& name, absl::Duration timeout);
  absl::Status resignRpc(const std::string& election, absl::Duration timeout);
  // After an acquire or a first Campaign whose outcome is unknown: releases
  // or resigns what the daemon may have granted, while `entry` is still
  // registered, then unregisters it; or, if the give-back's outcome is
  // unknown too, leaves it registered and abandoned.
  void giveBack(LockEntry& entry);
  void giveBack(ElectionEntry& entry);
  absl::Duration checkTimeout() const;

  void readLoop();
  void eventLoop();
  void handle(const v1::KeepAliveResponse& message, Notes& notes);
  bool started() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return first_heartbeat_ || ended_.load(); }
  // Sends a ping with the next id, noting when.
  bool sendPing(v1::KeepAliveRequest request);
  // Applies a heartbeat; true if it renewed the lease.
  bool onHeartbeat(const v1::Heartbeat& heartbeat);
  void onLockEvent(const v1::LockEvent& event, Notes& notes);
  void onElectionEvent(const v1::ElectionEvent& event, Notes& notes);
  void suspendAll(const std::string& reason, Notes& notes);
  // Ends the lease now (the daemon said its link is suspended) and suspends
  // every hold; a renewed lease ends the silence as after a lapse.
  void goSilent(const std::string& reason, Notes& notes);
  // Check/Status for everything after a silence; false if a call failed.
  bool recheckAll(Notes& notes);
  // Sets the final states (locks lost, candidacies terminated), then marks
  // the session ended for `why`; only the first call counts.
  void endSession(std::string why, Notes& notes);
  void post(Notes notes);

  const std::shared_ptr<const Endpoint> endpoint_;
  const SessionOptions options_;
  const std::unique_ptr<v1::Sessions::Stub> sessions_;
  const std::unique_ptr<v1::Locks::Stub> locks_;
  const std::unique_ptr<v1::Elections::Stub> elections_;
  std::string id_;
  std::string node_id_;
  absl::Duration ping_interval_;

  grpc::ClientContext stream_context_;
  std::unique_ptr<grpc::ClientReaderWriter<v1::KeepAliveRequest, v1::KeepAliveResponse>> stream_;
  std::thread reader_;
  std::thread events_;
  std::atomic<bool> ended_{false};
  // Event thread only (and open(), before it starts).
  bool resync_needed_ = false;
  uint64_t next_ping_id_ = 1;
  std::deque<std::pair<uint64_t, Clock::time_point>> pings_sent_;  // recent ones, oldest first
  // BootClock ticks; 0 until the first heartbeat. Written by the event
  // thread, exclusive_until_ first; read lease_until_ first.
  std::atomic<Clock::rep> lease_until_{0};
  std::atomic<Clock::rep> exclusive_until_{0};

  mutable std::mutex mu_;
  // The event thread waits on it for work.
  std::condition_variable wake_;
  // open() waits on it for the first heartbeat (or the end).
  std::condition_variable started_;
  std::deque<Incoming> incoming_ ABSL_GUARDED_BY(mu_);
  absl::Duration window_ ABSL_GUARDED_BY(mu_);
  // The lease ran out: held locks and primaryships are suspended.
  bool silent_ ABSL_GUARDED_BY(mu_) = false;
  bool first_heartbeat_ ABSL_GUARDED_BY(mu_) = false;
  bool closing_ ABSL_GUARDED_BY(mu_) = false;
  std::string end_reason_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::shared_ptr<LockEntry>> locks_held_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::shared_ptr<ElectionEntry>> candidacies_ ABSL_GUARDED_BY(mu_);
  // Blocking Acquire calls in flight, cancelled by close().
  std::set<grpc::ClientContext*> blocking_ ABSL_GUARDED_BY(mu_);
};

}  // namespace coordd::detail
