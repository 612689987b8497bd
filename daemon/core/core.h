#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "backend/backend.h"
#include "backend/serial_executor.h"
#include "core/types.h"
#include "metrics/daemon_metrics.h"

namespace coordd::core {

template <typename T>
using Reply = std::function<void(absl::StatusOr<T>)>;
using StatusReply = std::function<void(absl::Status)>;

struct CoreOptions {
  std::string node_id;  // 32 lowercase hex
  Limits limits;
  // Told whether the daemon can serve, whenever that changes (health checks).
  // Runs without the core's lock.
  std::function<void(bool)> on_readiness;
  // Counted into as the core works; its state gauges are added at
  // construction and read the core when scraped.
  std::shared_ptr<metrics::DaemonMetrics> metrics = std::make_shared<metrics::DaemonMetrics>();
  // Where the sweeper runs, and the clock of every session and deadline;
  // nullptr: a thread of its own, on backend::Clock.
  backend::Executor* timers = nullptr;
  // Makes the secret id of a new session (32 lowercase hex); nullptr: from
  // a non-deterministic source. The simulation's come from its seed.
  std::function<std::string()> session_ids = nullptr;
};

// The backend-neutral state machines: client sessions (local leases), locks,
// elections and the reaction to the coordinator link. Everything a client
// may ask is answered here; the gRPC layer only translates.
//
// Threading: public methods may be called from any thread and never block on
// the coordinator; replies run on the backend thread or on the caller's
// thread, never with the core's lock held. One mutex guards all state: the
// operations are short and the coordinator round trips happen outside it.
//
// NOTE: simplifying assumptions.
// * Release, resign and session end remove the local record first and then
//   delete in the coordinator; a delete that fails while the link is down is
//   kept as an orphan and retried by the sweeper until done or the
//   coordinator session expires (which deletes it anyway).
class Core : private backend::Listener {
 public:
  Core(CoreOptions options, backend::Backend& backend);
  ~Core() override;

  // Connects the backend and starts the sweeper.
  void start();
  // Graceful shutdown: refuses new work, ends every session with `reason`
  // (releasing everything in the coordinator), closes observers, and waits up
  // to `drain` for the coordinator deletes. Does not stop the backend.
  void shutdown(const std::string& reason, absl::Duration drain);

  // --- Sessions ------------------------------------------------------------
  // `processes`: the client's processes if the daemon can watch them, else
  // nullptr (see detachStream).
  absl::StatusOr<SessionInfo> openSession(const std::string& owner, std::chrono::milliseconds ttl,
                                          const std::map<std::string, std::string>& attributes,
                                          std::shared_ptr<const ClientProcesses> processes = nullptr);
  // Binds the KeepAlive stream; at most one per session.
  // `ping_id` (from the first request) is echoed in the first heartbeat.
  absl::Status attachStream(const std::string& session_id, std::shared_ptr<EventSink> sink, uint64_t ping_id = 0);
  // Renews the session and answers at once with a heartbeat echoing
  // `ping_id` (unless something was sent in the last few milliseconds: a
  // flood of pings is answered by the periodic heartbeat).
  absl::Status ping(const std::string& session_id, uint64_t ping_id = 0);
  // The stream ended without the daemon ending it. If it is still the
  // session's stream: when the client's processes are provably gone, the
  // session ends at once; otherwise (a Unix peer still alive, a TCP peer, a
  // dropped slow reader) nothing is freed before the ttl runs out since the
  // last ping, unless the processes exit meanwhile (the sweeper looks) or a
  // new stream attaches.
  void detachStream(const std::string& session_id, const EventSink* sink);
  // Ends the session; the reply comes once the coordinator deletes are done.
  void closeSession(const std::string& session_id, StatusReply reply);

  // --- Locks ---------------------------------------------------------------
  // TryAcquire, Acquire and Campaign return a call id, or 0 if it was
  // refused at once, for cancelCall and callAnswered (a call answered
  // already is known to neither).
  int64_t tryAcquire(const std::string& session_id, const std::string& name, Reply<TryAcquireResult> reply);
  int64_t acquire(const std::string& session_id, const std::string& name, std::chrono::milliseconds timeout,
                  Reply<int64_t> reply);
  // The caller of call `call_id` went away (cancelled, disconnected). The
  // core decides, under its lock, what that undoes: a waiter still queued is
  // removed and its reply gets DEADLINE_EXCEEDED; a call still in flight
  // gives back what it gets; a lock or candidacy already granted to it, whose
  // answer the caller may not have read, is released or withdrawn (and the
  // session told, as of any loss). Idempotent.
  void cancelCall(int64_t call_id);
  // The caller has the answer of call `call_id` (its call is done):
  // cancelCall no longer applies to it.
  void callAnswered(int64_t call_id);
  // Releases `name`; with `only_token`, only if held with that token.
  void release(const std::string& session_id, const std::string& name, StatusReply reply, int64_t only_token = 0);
  absl::StatusOr<CheckResult> check(const std::string& session_id, const std::string& name);

  // --- Elections -----------------------------------------------------------
  int64_t campaign(const std::string& session_id, const std::string& election, const std::string& value, bool rejoin,
                   Reply<ElectionStatus> reply);
  absl::StatusOr<ElectionStatus> status(const std::string& session_id, const std::string& election);
  void resign(const std::string& session_id, const std::string& election, StatusReply reply);
  // Registers an observer; it first gets the current primary. Returns an id
  // for removeObserver.
  absl::StatusOr<int64_t> addObserver(const std::string& election, std::shared_ptr<LeaderObserver> observer);
  void removeObserver(int64_t observer_id);

  DaemonStatus daemonStatus() const;
  const Limits& limits() const { return options_.limits; }

 private:
  struct HeldLock {
    int64_t token = 0;
    bool suspended = false;
    bool verifying = false;  // a verification read in flight
  };
  struct Candidacy {
    int64_t id = 0;             // this registration, to match async completions
    int64_t campaign_call = 0;  // the Campaign that made it, through every rejoin
    int64_t term = 0;           // its node's token; 0 while registering
    std::string value;
    bool rejoin = true;
    bool registering = true;
    bool primary = false;
    bool suspended = false;
    bool terminated = false;
    bool verifying = false;  // a verification read in flight
    std::string reason;
  };
  struct Session {
    std::string id;         // the session's secret: whoever knows it acts for the session
    std::string public_id;  // what others see in owner records and logs

    std::string owner;
    std::map<std::string, std::string> attributes;
    std::chrono::milliseconds ttl{0};
    std::chrono::milliseconds window{0};
    Clock::time_point last_ping;
    uint64_t last_ping_id = 0;
    bool ping_unanswered = false;  // no heartbeat since the last ping
    Clock::time_point last_sent;
    std::shared_ptr<EventSink> sink;
    // Lock and election events that came while no stream was attached: the
    // latest per hold (kind, name, token and candidacy), in order, sent first
    // on the next stream.
    std::vector<Event> missed;
    std::shared_ptr<const ClientProcesses> processes;  // nullptr: not watchable
    std::map<std::string, HeldLock> locks;
    std::map<std::string, int64_t> waits;  // lock name -> waiter id
    std::set<std::string> tries;           // TryAcquire in flight
    std::map<std::string, Candidacy> candidacies;
    size_t holds() const { return locks.size() + waits.size() + tries.size() + candidacies.size(); }
  };
  struct PendingTry {
    std::string session_id;
    std::string name;
    int64_t call_id = 0;
    Reply<TryAcquireResult> reply;
  };
  struct TryQueue {
    int64_t first_call = 0;  // the attempt in flight
    std::vector<PendingTry> queued;
  };
  struct PendingAcquire {
    std::string session_id;
    std::string name;
    Clock::time_point deadline;
    int64_t epoch = 0;
    Reply<int64_t> reply;
    // Granted while the link was suspended, in the session the wait began in:
    // answered once the grant is verified after the reconnect.
    std::optional<int64_t> granted;
    bool verifying = false;
  };
  // Something left in the coordinator that a failed call could not remove.
  struct Orphan {
    enum class Kind { kLock, kCandidate, kWaiter };
    Kind kind = Kind::kLock;
    std::string name;
    int64_t token = 0;  // lock token, candidate term or waiter id
  };
  struct Observer {
    std::string election;
    std::shared_ptr<LeaderObserver> observer;
    int64_t told_term = -1;  // the primary's term it was last told; 0: none
  };
  // Work to run once the core's lock is released (replies, mostly).
  using Deferred = std::vector<std::function<void()>>;

  // backend::Listener
  void onLinkState(backend::LinkState state) override;
  void onLockLost(const std::string& name, int64_t token, const std::string& reason) override;
  void onCandidacyChanged(const std::string& election, int64_t term, bool primary, bool removed,
                          const std::string& reason) override;
  void onLeaderChanged(const std::string& election, const std::optional<backend::Candidate>& leader) override;

  absl::StatusOr<Session*> findSession(const std::string& session_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The session, if it may take a new lock, wait or candidacy now: it exists,
  // the daemon serves and the coordinator link is up.
  absl::StatusOr<Session*> admitNewHold(const std::string& session_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The same, and `name` is neither held nor awaited by it, and its limit allows one more.
  absl::StatusOr<Session*> admitLock(const std::string& session_id, const std::string& name)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status admitHold(const Session& session) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status serving() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  backend::OwnerRecord ownerOf(const Session& session) const;
  // The hold of lock `name` by a session of this daemon, unless it is in
  // doubt: a TryAcquire of it is answered without a round trip.
  std::optional<backend::LockHolder> localHolder(const std::string& name) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void send(Session& session, Event event) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void sendLock(Session& session, const std::string& name, LockState state, int64_t token, const std::string& reason)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void sendElection(Session& session, const std::string& election, const Candidacy& candidacy)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  ElectionStatus statusOf(const Candidacy& candidacy) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The link is CONNECTED and the coordinator has confirmed the session
  // recently enough that nothing held can have been granted elsewhere. False
  // at once after this process was frozen, before the backend notices.
  bool linkSure() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A heartbeat for `session` carrying its lease (see Heartbeat.lease_ms).
  Event heartbeat(const Session& session) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Ends a session: its holds are deleted in the coordinator; `done` runs
  // once all of those deletes have completed.
  void endSession(const std::string& session_id, const std::string& reason, Deferred& deferred,
                  std::function<void()> done) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Deletes in the coordinator; a retryable failure becomes an orphan.
  void deleteLock(const std::string& name, int64_t token, std::function<void()> done)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void deleteCandidate(const std::string& election, int64_t term, std::function<void()> done)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void removeWaiter(const std::string& name, int64_t waiter_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void onDeleted(const Orphan& orphan, const absl::Status& status) ABSL_LOCKS_EXCLUDED(mu_);
  void finishAcquire(int64_t waiter_id, absl::Status status, Deferred& deferred) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Sends a TryAcquire to the coordinator, or answers it here: held through
  // this daemon, or granted to another session's attempt in flight.
  void startTry(PendingTry attempt, Deferred& deferred) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void sendTry(PendingTry attempt) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void onTried(const PendingTry& attempt, int64_t epoch, absl::StatusOr<backend::TryLockResult> result)
      ABSL_LOCKS_EXCLUDED(mu_);
  void answerTry(const PendingTry& attempt, absl::StatusOr<TryAcquireResult> result, Deferred& deferred)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void onAcquired(int64_t waiter_id, const std::string& name, absl::StatusOr<int64_t> token) ABSL_LOCKS_EXCLUDED(mu_);
  // A grant held back while the link was suspended, verified once it is back.
  void onGrantVerified(int64_t waiter_id, int64_t token, absl::StatusOr<bool> holds) ABSL_LOCKS_EXCLUDED(mu_);
  void grantAcquire(int64_t waiter_id, const PendingAcquire& pending, int64_t token, Deferred& deferred)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Registers `election` for `session_id` in the coordinator; the reply (if
  // any: the Campaign's own registration, not a rejoin) gets the resulting
  // status, and the session an event.
  void registerCandidacy(const std::string& session_id, const std::string& election, Reply<ElectionStatus> reply)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void terminateCandidacy(Session& session, const std::string& election, const std::string& reason)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Undo a grant whose caller gave up (cancelCall), if it still stands.
  void withdrawCandidacy(const std::string& session_id, const std::string& election, int64_t campaign_call,
                         const std::string& reason) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void giveBackLock(const std::string& session_id, const std::string& name, int64_t token)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Whether the holds survived a reconnect: all of them, or (the sweep's
  // retry of reads that failed) those still in doubt.
  void verifyHolds(bool after_reconnect) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void verifyAgainLater() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void publishLeader(const std::string& election) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Tells an observer of a primary unless it was told of it last.
  void tellObserver(Observer& entry, const std::optional<backend::Candidate>& leader)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Sessions, locks, candidacies by status and the link, read at each scrape.
  void addGauges();
  void countLost(const char* reason) { options_.metrics->locks_lost.with({reason}).inc(); }

  Clock::time_point now() const { return timers_->now(); }
  void scheduleSweep();
  void scheduleExitCheck() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void sweep(Deferred& deferred) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Ends the sessions whose stream broke and whose processes have all
  // exited since.
  void endExitedClients(Deferred& deferred) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const CoreOptions options_;
  backend::Backend& backend_;

  // The core's state, in tables, all under mu_. A session's own holds are in
  // its Session record; the tables beside it index them from the
  // coordinator's side.
  //
  // The coordinator link, as the backend last reported it.
  struct LinkTable {
    backend::LinkState state = backend::LinkState::kSuspended;
    bool ready = false;  // connected at least once
    bool serving_reported = false;
    int64_t epoch = 0;  // coordinator sessions so far
    // When the sweep verifies again the holds whose verification failed,
    // and how many retries in a row failed (each waits twice as long).
    std::optional<Clock::time_point> reverify_at;
    int reverify_failures = 0;
  };
  struct SessionTable {
    std::map<std::string, Session> live;  // by secret id
    // Recently ended sessions and why, so that late calls get a clear answer.
    std::map<std::string, std::string> ended;
    std::deque<std::string> ended_order;
    // Sessions whose stream broke while their processes live: the sweeper
    // looks at those every few milliseconds, and at them alone.
    std::set<std::string> awaiting_exit;
    bool exit_check_scheduled = false;
  };
  struct LockTable {
    std::map<int64_t, PendingAcquire> waiting;  // blocking acquires, by waiter id
    // Lock name -> the TryAcquires of it asked while another one of it is
    // in flight (the key is there while one is).
    std::map<std::string, TryQueue> trying;
    // (name, token) -> session id, for notifications from the coordinator.
    std::map<std::pair<std::string, int64_t>, std::string> holders;
  };
  struct ElectionTable {
    // (election, term) -> session id, for notifications from the coordinator.
    std::map<std::pair<std::string, int64_t>, std::string> candidates;
    std::map<int64_t, Observer> observers;
    std::map<std::string, int64_t> watched;  // election -> observer count
  };
  // Coordinator deletes in flight, and what failed ones left behind.
  struct DeleteTable {
    int64_t inflight = 0;
    std::vector<Orphan> orphans;
  };
  // TryAcquire, Acquire and Campaign calls whose caller may go away before it
  // has their answer, by call id: a TryAcquire or Campaign in flight (for an
  // Acquire, locks_.waiting is), then, once granted, what the grant was,
  // until callAnswered or cancelCall.
  struct Call {
    bool cancelled = false;  // in flight, its caller gone: give back what it gets
    bool granted = false;
    bool candidacy = false;  // a Campaign's candidacy, else a lock
    std::string session_id;
    std::string name;   // lock or election
    int64_t token = 0;  // the lock's token; for a candidacy, the call id
  };

  mutable std::mutex mu_;
  std::condition_variable cv_;
  LinkTable link_ ABSL_GUARDED_BY(mu_);
  SessionTable sessions_ ABSL_GUARDED_BY(mu_);
  LockTable locks_ ABSL_GUARDED_BY(mu_);
  ElectionTable elections_ ABSL_GUARDED_BY(mu_);
  DeleteTable deletes_ ABSL_GUARDED_BY(mu_);
  std::map<int64_t, Call> calls_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  int64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;  // calls, waiters, candidacies and observers
  std::unique_ptr<backend::SerialExecutor> own_timers_;
  backend::Executor* const timers_;
};

}  // namespace coordd::core
