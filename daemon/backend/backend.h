#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "backend/executor.h"

namespace coordd::backend {

// The daemon's link to its coordinator (Curator's connection states).
enum class LinkState {
  kConnected,    // a valid coordinator session, in contact
  kSuspended,    // contact lost; the session may still be valid
  kReconnected,  // contact regained within the same session
  kExpired,      // the session is gone with everything it held
};
const char* linkStateName(LinkState state);

// Who holds a lock or stands in an election; stored with the node.
struct OwnerRecord {
  std::string node_id;     // daemon node id, 32 lowercase hex
  std::string session_id;  // client session id within that daemon
  std::string label;       // the client's owner label
  std::map<std::string, std::string> attributes;
};

struct LockHolder {
  OwnerRecord owner;
  int64_t token = 0;  // fencing token: strictly increasing per lock
};

struct TryLockResult {
  bool acquired = false;
  int64_t token = 0;                 // when acquired
  std::optional<LockHolder> holder;  // when not acquired
};

struct LockView {
  std::string name;
  std::optional<LockHolder> holder;
  std::vector<OwnerRecord> waiters;  // FIFO order
};

struct Candidate {
  OwnerRecord owner;
  std::string value;
  int64_t term = 0;  // this candidate's term once primary (its node's token)
};

struct ElectionView {
  std::string name;
  std::vector<Candidate> candidates;  // primary first
};

struct Member {
  std::string node_id;
  std::map<std::string, std::string> attributes;
  std::string version;
  absl::Time since;
};

// What `coordctl status` shows about the coordinator.
struct BackendInfo {
  std::string kind;                // "memory", "zookeeper"
  std::string session;             // coordinator session id
  std::string watch_session;       // the second session's (it only watches and reads), if any
  absl::Duration session_timeout;  // absl::InfiniteDuration() when none
  std::string server;              // server connected to
};

template <typename T>
using Callback = std::function<void(absl::StatusOr<T>)>;
using Done = std::function<void(absl::Status)>;

// Receives what the coordinator reports by itself, unasked.
//
// Threading: every method is called on the backend's own thread, never from
// inside a Backend call. Implementations must be cheap and must not wait on
// the backend (hand work over, take a short lock, return).
class Listener {
 public:
  virtual ~Listener() = default;

  // The link changed. kExpired is followed by kConnected once a new
  // coordinator session exists.
  virtual void onLinkState(LinkState state) = 0;

  // A lock this daemon held (name, token) was deleted by someone else, e.g.
  // an admin force release.
  virtual void onLockLost(const std::string& name, int64_t token, const std::string& reason) = 0;

  // A candidacy of this daemon changed: it became primary (primary=true), or
  // was removed by someone else (removed=true, e.g. an admin step-down).
  virtual void onCandidacyChanged(const std::string& election, int64_t term, bool primary, bool removed,
                                  const std::string& reason) = 0;

  // The primary of an election watched with watchElection changed; nullopt
  // when the election has no candidate left.
  virtual void onLeaderChanged(const std::string& election, const std::optional<Candidate>& leader) = 0;
};

// The coordinator interface: what the core state machines need from ZooKeeper
// or from the embedded coordinator, and nothing that names either.
//
// Contract for every asynchronous method:
// * it returns at once; its callback runs later, exactly once, on the
//   backend's thread (never inside the call itself), in issue order for
//   operations on the same name;
// * callbacks must be cheap and must not block;
// * expected failures arrive as a Status: Unavailable (link down, retry),
//   Aborted (coordinator session expired), NotFound, AlreadyExists,
//   PermissionDenied, FailedPrecondition.
// Ownership is always checked in the coordinator: a release or resign never
// deletes a node that this daemon's session does not own with that token.
class Backend {
 public:
  virtual ~Backend() = default;

  // Starts connecting; the listener must outlive the backend. The first
  // onLinkState(kConnected) tells the backend is usable.
  virtual void start(Listener* listener) = 0;
  // Closes the coordinator session (ephemeral nodes go at once) and stops the
  // backend thread. Blocks; no callback runs after it returns.
  virtual void stop() = 0;

  virtual BackendInfo info() const = 0;

  // Until when the coordinator is known to keep this daemon's session, and
  // so everything held through it: nobody else can be granted one of our
  // locks or primaryships before then. On Clock; time_point::max() when
  // nothing outside this process can end the session. Thread-safe, cheap.
  virtual Clock::time_point leaseDeadline() const = 0;
  // Until when the coordinator cannot have ended this daemon's session, at
  // the least (no earlier than leaseDeadline()): after leaseDeadline() the
  // daemon no longer vouches for its holds, but nobody else can have them
  // before this. Thread-safe, cheap.
  virtual Clock::time_point holdDeadline() const = 0;

  // --- Locks ---------------------------------------------------------------

  // Non-blocking: takes `name` if free.
  virtual void tryLock(const std::string& name, const OwnerRecord& owner, Callback<TryLockResult> done) = 0;
  // Blocking: queues a FIFO waiter identified by `waiter_id` (unique within
  // this backend); `done` runs with the token once it holds the lock.
  virtual void lock(const std::string& name, const OwnerRecord& owner, int64_t waiter_id, Callback<int64_t> done) = 0;
  // Removes a waiter. Its `done` then runs with Cancelled unless it already
  // ran; returns through `done` NotFound when the waiter was already served.
  virtual void cancelLock(const std::string& name, int64_t waiter_id, Done done) = 0;
  // Deletes the lock node if this daemon's session holds it with `token`;
  // NotFound otherwise.
  virtual void unlock(const std::string& name, int64_t token, Done done) = 0;
  // Whether this daemon's session still holds `name` with `token`.
  virtual void verifyLock(const std::string& name, int64_t token, Callback<bool> done) = 0;

  // --- Elections -----------------------------------------------------------

  // Registers a candidate; the result is its term (its node's token) and
  // whether it is primary right now. Later changes come to the listener.
  struct CampaignResult {
    int64_t term = 0;
    bool primary = false;
  };
  virtual void campaign(const std::string& election, const OwnerRecord& owner, const std::string& value,
                        Callback<CampaignResult> done) = 0;
  // Withdraws the candidate with `term` if this daemon's session owns it.
  virtual void resign(const std::string& election, int64_t term, Done done) = 0;
  // Re-reads a candidate after a reconnect: nullopt if it is gone, else
  // whether it is primary.
  virtual void verifyCandidacy(const std::string& election, int64_t term, Callback<std::optional<bool>> done) = 0;
  // Current primary, nullopt when none.
  virtual void leader(const std::string& election, Callback<std::optional<Candidate>> done) = 0;
  // Starts/stops onLeaderChanged notifications for an election.
  virtual void watchElection(const std::string& election) = 0;
  virtual void unwatchElection(const std::string& election) = 0;

  // --- Admin (cluster-wide) ------------------------------------------------

  virtual void listLocks(Callback<std::vector<LockView>> done) = 0;
  virtual void lockInfo(const std::string& name, Callback<LockView> done) = 0;
  // Deletes the lock node whoever holds it; returns the former holder.
  virtual void forceUnlock(const std::string& name, Callback<LockHolder> done) = 0;
  virtual void listElections(Callback<std::vector<ElectionView>> done) = 0;
  virtual void electionInfo(const std::string& election, Callback<ElectionView> done) = 0;
  // Removes the primary's candidate whoever owns it; returns it.
  virtual void stepDown(const std::string& election, Callback<Candidate> done) = 0;
  // Registers this daemon in the member registry (kept across sessions).
  virtual void registerMember(const Member& self) = 0;
  virtual void listMembers(Callback<std::vector<Member>> done) = 0;
};

}  // namespace coordd::backend
