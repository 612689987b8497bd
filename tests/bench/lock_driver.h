#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace coordd::bench {

// One system's way of taking and giving back an exclusive lock, as the
// lock-cycle workload drives it. Client k stands for one process of a user:
// it has its own session or lease and its own lock name, so clients never
// contend and the figures measure the system, not the queueing.
class LockDriver {
 public:
  virtual ~LockDriver() = default;

  // Makes clients 0..clients-1 ready (their session, lease, lock name).
  // Called on the main thread, before cycle() runs for them and never while
  // it runs; a later call with a larger count keeps the clients it has.
  // Throws if the system refuses.
  virtual void prepare(int clients) = 0;

  // One cycle of `client`: a non-blocking acquire of its lock, then its
  // release. Runs on that client's own thread, concurrently with other
  // clients' cycles. An error if either step failed or the lock was not
  // acquired; the lock is not held afterwards either way.
  virtual absl::Status cycle(int client) = 0;
};

// A lock service whose clients also contend, as the tasks of a user do that
// are dropped when their lock is taken: the contended workload's clients
// share a few locks instead of one each.
class TryLockDriver : public LockDriver {
 public:
  // One attempt of `client` at shared lock number `lock`: a non-blocking
  // acquire and, if it got the lock, its release at once. True if it got
  // the lock, false if another client held it; an error if a step failed.
  // The lock is not held by `client` afterwards either way.
  virtual absl::StatusOr<bool> attempt(int client, int lock) = 0;
};

}  // namespace coordd::bench
