#pragma once

#include "absl/status/status.h"

namespace coordd::core {

// What a client is told when a coordinator operation fails: a lost
// coordinator session (Aborted inside the daemon) is a retryable UNAVAILABLE
// for the client, a cancelled wait is DEADLINE_EXCEEDED; the rest as is.
absl::Status clientStatus(const absl::Status& status);

}  // namespace coordd::core
