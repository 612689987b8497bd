#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "coordd/types.h"

namespace coordd {

namespace detail {
class SessionCore;
struct LockEntry;
}  // namespace detail

// Called with the new state and the daemon's reason whenever a held lock
// changes state because of the daemon (events, the session ending) or the
// keepalive watchdog; not for the caller's own release(). Runs on the
// session's event thread: keep it cheap (signal a condvar, write an eventfd)
// and do not call blocking Session/LockGuard methods from it.
using LockCallback = std::function<void(LockState state, absl::string_view reason)>;

// A lock held by a Session. Move-only; releases the lock on destruction.
// state()/held()/token() are lock-free and safe from any thread. A moved-from
// guard is empty: kReleased, token 0, and name() must not be called.
class LockGuard {
 public:
  LockGuard(LockGuard&& other) noexcept;
  LockGuard& operator=(LockGuard&& other) noexcept;
  LockGuard(const LockGuard&) = delete;
  LockGuard& operator=(const LockGuard&) = delete;
  // Releases like release(), ignoring errors.
  ~LockGuard();

  const std::string& name() const;
  // Fencing token: strictly increasing across successive holders of the lock
  // (another lock's may be equal: compare tokens of one lock only).
  int64_t token() const;
  // True only while kHeld: the answer to "may I act on the resource now?".
  bool held() const;
  LockState state() const;
  // Why the lock is suspended or lost; empty otherwise.
  std::string reason() const;

  // Releases the lock (Locks.Release); afterwards state() is kReleased.
  // A lock that is already lost, or whose session has ended, is not
  // released again: returns OK. NOT_FOUND from the daemon is ignored.
  absl::Status release();

 private:
  friend class Session;
  LockGuard(std::shared_ptr<detail::SessionCore> core, std::shared_ptr<detail::LockEntry> entry);

  std::shared_ptr<detail::SessionCore> core_;
  std::shared_ptr<detail::LockEntry> entry_;  // null once moved from
};

}  // namespace coordd
