#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "backend/backend.h"

namespace coordd::core {

using Clock = backend::Clock;

// A lock as seen by one client session.
enum class LockState { kHeld, kNotHeld, kSuspended, kLost, kRestored };
const char* lockStateName(LockState state);

// A candidacy as seen by one client session.
enum class CandidateStatus { kNotCandidate, kPrimary, kSecondary, kSuspended, kTerminated };
const char* candidateStatusName(CandidateStatus status);

// Something the daemon pushes down a session's KeepAlive stream.
struct Event {
  enum class Kind { kHeartbeat, kLock, kElection, kEnded };
  Kind kind = Kind::kHeartbeat;
  std::string name;  // lock or election name
  LockState lock_state = LockState::kNotHeld;
  CandidateStatus status = CandidateStatus::kNotCandidate;
  int64_t token = 0;      // fencing token or term
  int64_t candidacy = 0;  // elections: which of the session's candidacies
  std::string reason;
  backend::LinkState link = backend::LinkState::kConnected;
  std::chrono::milliseconds window{0};  // W, in heartbeats
  uint64_t ping_id = 0;                 // heartbeats: the latest ping received
  std::chrono::milliseconds lease{0};   // heartbeats: valid this long after sending ping_id
  std::chrono::milliseconds margin{0};  // heartbeats: held by nobody else this much longer
};

// Where a session's events go: the KeepAlive stream.
class EventSink {
 public:
  virtual ~EventSink() = default;
  // Queues an event; never blocks. Called with the core's lock held, so it
  // must not call back into the core.
  virtual void send(const Event& event) = 0;
  // Ends the stream once what is queued is written.
  virtual void close() = 0;
};

// The processes behind a client session, as far as the daemon can see them
// (for a Unix socket peer in the daemon's pid namespace: pidfds).
class ClientProcesses {
 public:
  virtual ~ClientProcesses() = default;
  // True once every one of them has exited: the client is provably gone.
  // Cheap, never blocks; called with the core's lock held.
  virtual bool gone() const = 0;
};

// Watches the primary of one election (Elections.Observe).
class LeaderObserver {
 public:
  virtual ~LeaderObserver() = default;
  // The primary changed (nullopt: none). Called with the core's lock held.
  virtual void onLeader(const std::optional<backend::Candidate>& leader) = 0;
  // No more calls will come; the daemon is shutting down.
  virtual void onClosed(const std::string& reason) = 0;
};

struct Limits {
  int64_t max_sessions = 1024;
  int64_t max_holds_per_session = 1024;  // locks + waits + candidacies
  int64_t max_observers = 1024;          // Elections.Observe streams
};

struct SessionInfo {
  std::string session_id;
  std::chrono::milliseconds ttl{0};
  std::chrono::milliseconds window{0};  // W = min(ttl, coordinator session timeout)
  std::string node_id;
};

struct TryAcquireResult {
  bool acquired = false;
  int64_t token = 0;
  std::optional<backend::LockHolder> holder;
};

struct CheckResult {
  LockState state = LockState::kNotHeld;
  int64_t token = 0;
};

struct ElectionStatus {
  CandidateStatus status = CandidateStatus::kNotCandidate;
  int64_t term = 0;
  std::string reason;
  // Tells this candidacy's events from those of an earlier one of the
  // session in the same election; the same through rejoins. 0: none.
  int64_t candidacy = 0;
};

struct DaemonStatus {
  backend::LinkState link = backend::LinkState::kSuspended;
  bool ready = false;
  int64_t sessions = 0;
  int64_t locks_held = 0;
  int64_t lock_waiters = 0;
  int64_t candidacies = 0;
  // TryAcquire and Campaign calls in flight, and grants of any of the three
  // lock and campaign calls whose caller has not had the answer yet.
  int64_t calls_pending = 0;
};

}  // namespace coordd::core
