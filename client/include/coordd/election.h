#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "coordd/types.h"

namespace coordd {

namespace detail {
class SessionCore;
struct ElectionEntry;
}  // namespace detail

// Called whenever the candidacy's status or term changes because of the
// daemon (events, the session ending) or the keepalive watchdog; not for the
// caller's own resign(). Runs on the session's event thread: keep it cheap and
// do not call blocking Session/Election methods from it.
using ElectionCallback = std::function<void(const ElectionState& state)>;

// A candidacy of a Session in one election, kept current by the daemon's
// events. Resigns on destruction. The accessors are lock-free and safe from
// any thread.
class Election {
 public:
  Election(const Election&) = delete;
  Election& operator=(const Election&) = delete;
  // Resigns like resign(), ignoring errors.
  ~Election();

  const std::string& name() const;
  // Local, microseconds: true only while kPrimary. Turns false as soon as the
  // daemon reports SUSPENDED or the keepalive watchdog fires.
  bool isPrimary() const;
  // Each a separate read: the term may change between isPrimary() and
  // term(). To act in a term, take both from state().
  int64_t term() const;
  ElectionStatus status() const;
  // status, term and reason, consistent with each other.
  ElectionState state() const;

  // Elections.Status round trip: the daemon's current answer (also applied to
  // the cached state). The "check before acting" call.
  absl::StatusOr<ElectionState> checkStatus();
  // Campaigns again with the same value, e.g. after kTerminated. If the daemon
  // already re-registered the candidacy (ALREADY_EXISTS), that is success and
  // the state is refreshed with checkStatus().
  absl::Status rejoin();
  // Steps down and leaves the election (Elections.Resign); afterwards
  // status() is kNotCandidate. NOT_FOUND and an ended session are OK.
  absl::Status resign();

 private:
  friend class Session;
  Election(std::shared_ptr<detail::SessionCore> core, std::shared_ptr<detail::ElectionEntry> entry);

  std::shared_ptr<detail::SessionCore> core_;
  std::shared_ptr<detail::ElectionEntry> entry_;
};

}  // namespace coordd
