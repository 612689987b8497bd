#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>

#include "absl/time/time.h"
#include "backend/backend.h"
#include "backend/keeper/keeper.h"
#include "backend/recipes/layout.h"
#include "backend/serial_executor.h"
#include "metrics/daemon_metrics.h"

namespace coordd::backend::recipes {

using keeper::Code;
using keeper::CreateMode;
using keeper::Keeper;
using keeper::Result;
using keeper::SessionState;
using keeper::Stat;
using keeper::WatchEvent;

struct KeeperOptions {
  // What info() and the logs call the coordinator: "zookeeper", "memory".
  std::string kind = "zookeeper";
  // How messages to clients name it: "ZooKeeper".
  std::string name = "ZooKeeper";
  // The chroot every path is under: "" or "/replicante".
  std::string root = "/replicante";
  absl::Duration session_timeout = absl::Seconds(10);
  // The cleaner of empty parents: how often its primary passes, and how many
  // it deletes per pass at most.
  absl::Duration cleaner_interval = absl::Seconds(60);
  int64_t cleaner_limit = 100;
  // Opens a keeper session; called again after each expiry.
  keeper::KeeperFactory open_session;
  // Opens the watch session (see KeeperBackend); nullptr: open_session.
  keeper::KeeperFactory open_watch_session;
  // The keeper lives in this process (the embedded coordinator): nothing
  // outside it ends the session, so leaseDeadline() and holdDeadline() are
  // unbounded, as nobody else can be granted what this daemon holds.
  bool in_process = false;
  // Where the backend's state lives and its callbacks run; nullptr: a thread
  // of its own.
  Executor* executor = nullptr;
  std::shared_ptr<metrics::DaemonMetrics> metrics = std::make_shared<metrics::DaemonMetrics>();
};

// The coordinator on a keeper (ZooKeeper, or the in-memory one), with
// Replicante's layout.
//
// Recipes: a lock is the single ephemeral node /locks/<b>/<sha>, taken by
// creating it and released by deleting it, with no read on the way; blocking
// acquirers queue as ephemeral-sequential waiters, each
// watching only its predecessor, and the head takes the same lock node, so
// both kinds exclude each other. An election is ephemeral-sequential
// candidates; the lowest is primary; each watches only its predecessor.
// Tokens and terms are the czxid of the node.
//
// Two keeper sessions. A session's requests are served in order, so a read
// in the session that holds the nodes waits behind every write in flight,
// everyone's. The first session makes the writes (and the reads of
// waiters, elections and verification); the watch session holds no nodes:
// it watches the lock nodes this daemon holds (a foreign delete makes the
// lock LOST) and reads the holder of a lock found taken. The link is
// CONNECTED only while both sessions are: without its watch session the
// daemon would not hear of a foreign delete of what it holds.
//
// NOTE: simplifying assumptions.
// * All state lives on one executor: calls are posted to it, and the
//   keeper's answers and watches are handed to it, so nothing here needs a
//   lock and the keeper's thread never blocks.
// * Calls other than verification need the link CONNECTED: while SUSPENDED
//   they fail UNAVAILABLE at once (the core retries deletes), instead of
//   queueing inside the keeper client.
// * A create whose reply is lost to a connection loss is remembered and,
//   once reconnected, found by path and session owner and deleted when
//   nobody claims it; it is never created twice.
// * The chroot is created if missing.
class KeeperBackend : public Backend {
 public:
  explicit KeeperBackend(KeeperOptions options);
  ~KeeperBackend() override;

  void start(Listener* listener) override;
  void stop() override;
  BackendInfo info() const override;
  Clock::time_point leaseDeadline() const override;
  Clock::time_point holdDeadline() const override;

  void tryLock(const std::string& name, const OwnerRecord& owner, Callback<TryLockResult> done) override;
  void lock(const std::string& name, const OwnerRecord& owner, int64_t waiter_id, Callback<int64_t> done) override;
  void cancelLock(const std::string& name, int64_t waiter_id, Done done) override;
  void unlock(const std::string& name, int64_t token, Done done) override;
  void verifyLock(const std::string& name, int64_t token, Callback<bool> done) override;

  void campaign(const std::string& election, const OwnerRecord& owner, const std::string& value,
                Callback<CampaignResult> done) override;
  void resign(const std::string& election, int64_t term, Done done) override;
  void verifyCandidacy(const std::string& election, int64_t term, Callback<std::optional<bool>> done) override;
  void leader(const std::string& election, Callback<std::optional<Candidate>> done) override;
  void watchElection(const std::string& election) override;
  void unwatchElection(const std::string& election) override;

  void listLocks(Callback<std::vector<LockView>> done) override;
  void lockInfo(const std::string& name, Callback<LockView> done) override;
  void forceUnlock(const std::string& name, Callback<LockHolder> done) override;
  void listElections(Callback<std::vector<ElectionView>> done) override;
  void electionInfo(const std::string& election, Callback<ElectionView> done) override;
  void stepDown(const std::string& election, Callback<Candidate> done) override;
  void registerMember(const Member& self) override;
  void listMembers(Callback<std::vector<Member>> done) override;

 private:
  enum class Link { kConnecting, kConnected, kSuspended };
  // Each watched thing keeps the id of its latest watch ("round"): a watch
  // or completion of an older round is ignored, so re-arming (after a
  // reconnect, say) never multiplies the chains.
  // A watch chain is armed once the call that set its latest watch was
  // answered: the keeper keeps that watch across a reconnect, so only a
  // chain that is not armed is set again then (else they pile up).
  // A held lock's watch is in the watch session.
  struct HeldLock {
    std::string path;
    int64_t token = 0;
    int32_t version = 0;  // the node's: 1 for the one a multi's set made, else 0
    int64_t round = 0;
    bool armed = false;
    bool arming = false;     // its watch's exists is in flight
    Done release = nullptr;  // a Release that came meanwhile: it goes once that is answered
  };
  struct Waiter {
    std::string name;
    std::string payload;
    std::string node;  // our sequential node, once created
    Callback<int64_t> done;
    int64_t round = 0;
    bool armed = false;
  };
  // Who waits for an evaluation of a candidacy: its registration (nobody
  // knows of the candidacy yet) or a verification after a reconnect.
  struct Caller {
    Callback<CampaignResult> done;
    bool registration = false;
  };
  struct Held {
    std::string election;
    std::string path;
    bool primary = false;
    int64_t round = 0;  // own-node watch
    bool armed = false;
    int64_t eval_round = 0;        // evaluation
    int64_t pred_round = 0;        // predecessor watch
    std::string predecessor = {};  // the node it watches, while pred_armed
    bool pred_armed = false;
    // Callers (a registration, a verification) waiting for an evaluation
    // that a newer one superseded: the newest answers them.
    std::vector<Caller> awaiting = {};
  };
  struct Watched {
    int64_t leader_term = -1;  // last published; -1: none yet
    int64_t round = 0;
    bool armed = false;
  };
  using Results = std::vector<Result>;

  // Runs `body` on the executor if the link is up, else answers `done`.
  template <typename T>
  void whenConnected(T done, std::function<void()> body);
  // Starts a new round of table[key] (its `field` takes a fresh id) and
  // returns the round's guard: the entry while that round is still its
  // latest in this keeper session, else nullptr. Every watch and completion
  // of the round asks it first.
  template <typename Table, typename Entry = typename Table::mapped_type>
  auto newRound(Table& table, const typename Table::key_type& key, int64_t Entry::*field);
  absl::Status usable() const;
  std::string rootPath() const { return layout_.root().empty() ? "/" : layout_.root(); }
  absl::Status expired() const;

  void connect();
  void onSession(int64_t generation, SessionState state);
  void expire(const std::string& why);
  void updateInfo();
  // The lease: a sync probe every sixth of the session timeout; each answer
  // moves the deadline to when it was sent plus two thirds of the timeout
  // (the server heard us then, and expires us no sooner than a timeout
  // later; the last third covers the ensemble relaying that contact). When
  // the deadline passes with the C client still connected (a hung process or
  // server), the link is reported SUSPENDED until a probe comes back.
  void probeLoop(int64_t generation);
  void probe();
  void confirmed(Clock::time_point sent);

  // Creates `path`, creating missing persistent parents first.
  void createWithParents(const std::string& path, const std::string& data, CreateMode mode, Keeper::Done done,
                         int attempt = 0);
  void ensurePath(const std::string& path, std::function<void(Code rc)> done);
  // Whether a node with `stat` is this session's with czxid `token`.
  bool isOurs(const Stat& stat, int64_t token) const;
  // Whether this session owns `path` with czxid `token`; the stat comes along.
  void owned(const std::string& path, int64_t token, std::function<void(Code rc, bool owned, const Stat&)> done);
  // Gets every path; rc is the first failure other than a node gone
  // meanwhile (whose result the caller skips), and then there are no results.
  void getAll(std::vector<std::string> paths, std::function<void(Code rc, Results)> done);
  // Lists <root>/<bucket>/<leaf> paths.
  void listBucketed(const std::string& root, std::function<void(Code rc, std::vector<std::string>)> done);
  void electionView(const std::string& dir, Callback<ElectionView> done);

  // The first session's link state, told to the listener as the link's
  // when the watch session is up, else held back as SUSPENDED.
  void reportLink(LinkState state);
  // Tells the listener the link is up, if both sessions are and it was not
  // told so.
  void tellUp();
  // The watch session went away (up: false) or is back and synced.
  void watcherUp(bool up);
  void connectWatcher();
  void onWatcherSession(int64_t generation, SessionState state);
  // Gets `path` as of now: through the watch session, synced first, when it
  // is up; else through the first session.
  void getFresh(const std::string& path, Keeper::Done done);

  void attemptLock(const std::string& name, const OwnerRecord& owner, int attempt, Callback<TryLockResult> done);
  void holdLock(const std::string& name, const std::string& path, const Stat& created);
  // Sets the held lock's watch in the watch session, if it is up.
  void watchLock(const std::string& name);
  // Deletes a held lock's node: at once if its watch is set, after a read
  // that it is ours otherwise.
  void releaseHeld(std::map<std::string, HeldLock>::iterator it, Done done);
  // A Release that waited for the watch's answer goes, if that is in.
  void settleRelease(const std::string& name);
  // Takes the Releases waiting for a watch's answer, to answer them.
  std::vector<Done> parkedReleases();
  // Deletes the lock node if it is this session's with czxid `token`.
  void removeIfOwned(const std::string& name, int64_t token, Done done);
  void evaluateWaiter(int64_t waiter_id);
  void finishWaiter(int64_t waiter_id, absl::StatusOr<int64_t> result);
  void registerCandidate(const std::string& election, const OwnerRecord& owner, const std::string& value, int attempt,
                         Callback<CampaignResult> done);
  // Reads where the candidacy stands; `first` (if any) gets the answer.
  void evaluateCandidate(int64_t term, Callback<CampaignResult> first, bool registration = false);
  // Forgets a candidacy; whoever awaits its evaluation gets `why`.
  void forgetCandidate(int64_t term, const absl::Status& why);
  void watchOwnCandidate(int64_t term);
  void armElectionWatch(const std::string& election);
  void publishLeader(const std::string& election);
  void currentLeader(const std::string& election, Callback<std::optional<Candidate>> done);
  void createMember();
  void reconcileUncertain();
  // Deletes a node of ours; if the answer is lost, it is reconciled later.
  void removeOwn(const std::string& path);
  void noteIfUncertain(Code rc, const std::string& path);
  // Re-arms, after a reconnect, every watch chain that is not armed.
  void rearmAll();
  void campaignCleaner();
  void scheduleCleaner();
  void clean();

  const KeeperOptions options_;
  const Layout layout_;
  Listener* listener_ = nullptr;

  // Executor-thread state.
  std::unique_ptr<keeper::Keeper> zk_;
  int64_t generation_ = 0;
  Link link_ = Link::kConnecting;
  int64_t suspensions_ = 0;
  bool stopped_ = false;
  std::map<std::string, HeldLock> locks_;
  std::map<int64_t, Waiter> waiters_;
  std::map<int64_t, Held> candidates_;  // by term
  std::map<std::string, Watched> watched_;
  std::set<std::string> uncertain_;  // creates whose reply was lost
  std::optional<Member> self_;
  int64_t cleaner_term_ = 0;  // this daemon's candidacy in the cleaner election
  int64_t next_round_ = 1;
  bool opening_ = false;                     // making the chroot of a new session
  Clock::time_point confirmed_sent_{};       // latest probe answered, this session
  bool lapsed_ = false;                      // deadline passed while connected
  std::unique_ptr<keeper::Keeper> watcher_;  // the watch session
  int64_t watcher_generation_ = 0;
  bool watcher_up_ = false;
  std::optional<LinkState> told_;    // what the listener was told last; nothing yet: SUSPENDED
  bool main_up_ = false;             // the first session is connected and confirmed
  bool new_session_untold_ = false;  // the first session is new: the listener hears CONNECTED, not RECONNECTED

  std::atomic<bool> stopping_{false};
  std::atomic<int64_t> lease_deadline_ns_{0};  // Clock, since its epoch
  std::atomic<int64_t> hold_deadline_ns_{0};   // the same
  mutable std::mutex info_mu_;
  BackendInfo info_;

  std::unique_ptr<SerialExecutor> own_executor_;  // when options.executor is nullptr
  Executor* executor_;
};

}  // namespace coordd::backend::recipes
