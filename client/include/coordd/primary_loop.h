#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "coordd/session.h"

namespace coordd {

struct PrimaryLoopOptions {
  std::string election;
  std::string value;  // published with the candidacy
  // How often to check the status (and run the work when primary).
  absl::Duration interval = absl::Seconds(1);
  // Resign and campaign again after this many runs as primary, so failover
  // is exercised routinely. 0: never.
  int64_t step_down_every = 0;
};

// Replicante's looping election: campaigns in `options.election`, then every
// `interval` asks the daemon (Election::checkStatus) and runs `work(term)`
// on the calling thread only if this session is PRIMARY. A terminated
// candidacy campaigns again. Returns OK once `stop` is set (observed within
// 100 ms; resigns first), or the first non-retryable error (e.g.
// FAILED_PRECONDITION when the session ends). UNAVAILABLE and
// DEADLINE_EXCEEDED from a check only skip that round.
absl::Status runPrimaryLoop(Session& session, const PrimaryLoopOptions& options,
                            const std::function<void(int64_t term)>& work, const std::atomic<bool>& stop);

}  // namespace coordd
