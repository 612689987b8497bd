#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>

#include "absl/strings/string_view.h"
#include "coordd/boot_clock.h"

namespace coordd {

// Who holds a lock or stands in an election, as recorded in the coordinator.
struct Owner {
  std::string node_id;     // daemon id: 32 lowercase hex digits
  std::string session_id;  // client session within that daemon
  std::string owner;       // the client's human label (SessionOptions::owner)
  std::map<std::string, std::string> attributes;
};

// The primary of an election.
struct LeaderInfo {
  Owner owner;
  std::string value;  // published with the candidacy (CampaignRequest.value)
  int64_t term = 0;   // strictly increasing across successive primaries
};

// A lock held through a LockGuard. kLost and kReleased are final.
enum class LockState {
  kHeld,       // held; the fencing token is valid
  kSuspended,  // the daemon's link (or ours to the daemon) is in doubt: treat as not held
  kLost,       // gone for good; acquire again if still wanted
  kReleased,   // released by this process
};

// A candidacy held through an Election handle.
enum class ElectionStatus {
  kNotCandidate,  // resigned, or never registered
  kPrimary,
  kSecondary,
  kSuspended,   // was primary, link in doubt: do not act as primary
  kTerminated,  // candidacy ended; with rejoin the daemon registers it again
};

struct ElectionState {
  ElectionStatus status = ElectionStatus::kNotCandidate;
  // Term of this candidacy's primaryship when kPrimary/kSuspended; the
  // current primary's term otherwise (0 when unknown).
  int64_t term = 0;
  std::string reason;  // why, for kSuspended/kTerminated
};

// A session's lease from the daemon, on this host's BootClock
// (CLOCK_BOOTTIME: it counts the time the host was suspended, as the rest of
// the cluster does).
struct Lease {
  // HELD locks and PRIMARY candidacies may be acted on until then.
  BootClock::time_point valid_until;
  // Nobody else can be granted them before then (>= valid_until), even if
  // the daemon or this process hangs: the margin to stop work that must not
  // overlap the next holder's.
  BootClock::time_point exclusive_until;
};

// Lowercase names ("held", "primary", ...) for logs and CLI output.
absl::string_view toString(LockState state);
absl::string_view toString(ElectionStatus status);

}  // namespace coordd
