#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "backend/backend.h"

namespace coordd::backend::memory {

// The embedded coordinator itself: what a ZooKeeper ensemble holds, kept in
// process memory. Each MemoryBackend is one coordinator session on it, so
// tests can run several "daemons" against one store.
//
// NOTE: simplifying assumptions.
// * Everything lives in one map under one mutex; there is no persistence.
// * A suspended session keeps its nodes (as in ZooKeeper until expiry) but
//   gets no notifications and cannot operate; a waiter of a suspended session
//   at the head of a queue is served only once its session is back, and the
//   lock stays free meanwhile (as the ZooKeeper recipe behaves).
// * Tokens come from one counter, like ZooKeeper's zxid: unique across all
//   nodes and increasing with creation.
class MemoryStore {
 public:
  // How the store reaches a session's backend.
  class SessionSink {
   public:
    virtual ~SessionSink() = default;
    // Runs `task` on the backend's thread, never inline.
    virtual void post(std::function<void()> task) = 0;
    virtual Listener* listener() = 0;
  };

  // A new coordinator session; the sink must stay valid until closeSession.
  int64_t openSession(SessionSink* sink);
  // Ends a session as an expiry does: every node it owns goes, its waiters
  // get Aborted, the others are told.
  void closeSession(int64_t session);
  void setSuspended(int64_t session, bool suspended);

  absl::StatusOr<TryLockResult> tryLock(int64_t session, const std::string& name, const OwnerRecord& owner);
  // Queues a waiter; `done` is posted to the session when it gets the lock,
  // or with Aborted when its session ends.
  absl::Status lock(int64_t session, const std::string& name, const OwnerRecord& owner, int64_t waiter_id,
                    Callback<int64_t> done);
  // Removes a waiter: its `done` is posted with Cancelled. NotFound if absent.
  absl::Status cancelLock(int64_t session, const std::string& name, int64_t waiter_id);
  absl::Status unlock(int64_t session, const std::string& name, int64_t token);
  absl::StatusOr<bool> verifyLock(int64_t session, const std::string& name, int64_t token);

  absl::StatusOr<Backend::CampaignResult> campaign(int64_t session, const std::string& election,
                                                   const OwnerRecord& owner, const std::string& value);
  absl::Status resign(int64_t session, const std::string& election, int64_t term);
  absl::StatusOr<std::optional<bool>> verifyCandidacy(int64_t session, const std::string& election, int64_t term);
  absl::StatusOr<std::optional<Candidate>> leader(int64_t session, const std::string& election);
  void watchElection(int64_t session, const std::string& election);
  void unwatchElection(int64_t session, const std::string& election);

  absl::StatusOr<std::vector<LockView>> listLocks(int64_t session);
  absl::StatusOr<LockView> lockInfo(int64_t session, const std::string& name);
  absl::StatusOr<LockHolder> forceUnlock(int64_t session, const std::string& name);
  absl::StatusOr<std::vector<ElectionView>> listElections(int64_t session);
  absl::StatusOr<ElectionView> electionInfo(int64_t session, const std::string& election);
  absl::StatusOr<Candidate> stepDown(int64_t session, const std::string& election);
  void registerMember(int64_t session, const Member& member);
  absl::StatusOr<std::vector<Member>> listMembers(int64_t session);

 private:
  struct SessionState {
    SessionSink* sink = nullptr;
    bool suspended = false;
  };
  struct Held {
    LockHolder holder;
    int64_t session = 0;
  };
  struct Waiter {
    OwnerRecord owner;
    int64_t session = 0;
    int64_t waiter_id = 0;
    Callback<int64_t> done;
  };
  struct LockEntry {
    std::optional<Held> held;
    std::deque<Waiter> waiters;
  };
  struct CandidateEntry {
    Candidate candidate;
    int64_t session = 0;
  };
  struct ElectionEntry {
    std::vector<CandidateEntry> candidates;  // ascending term: creation order
    std::set<int64_t> watchers;              // sessions
  };

  absl::Status usable(int64_t session) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Hands a free lock to its head waiter if that waiter's session can act.
  void serve(const std::string& name) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void dropIfEmpty(const std::string& name) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Removes candidate `index` and tells whoever must know.
  void removeCandidate(const std::string& election, size_t index, bool tell_owner, const std::string& reason)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void dropElectionIfEmpty(const std::string& election) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void announceLeader(const std::string& election, int64_t previous_term) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Runs fn(listener) on the session's thread unless it is suspended.
  void notify(int64_t session, std::function<void(Listener*)> fn) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  LockView viewOf(const std::string& name, const LockEntry& entry) const;

  mutable std::mutex mu_;
  int64_t next_session_ ABSL_GUARDED_BY(mu_) = 1;
  int64_t next_token_ ABSL_GUARDED_BY(mu_) = 1;
  std::map<int64_t, SessionState> sessions_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, LockEntry> locks_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, ElectionEntry> elections_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::pair<Member, int64_t>> members_ ABSL_GUARDED_BY(mu_);
};

}  // namespace coordd::backend::memory
