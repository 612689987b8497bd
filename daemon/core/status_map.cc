#include "core/status_map.h"

#include "absl/strings/str_cat.h"

namespace coordd::core {

absl::Status clientStatus(const absl::Status& status) {
  if (absl::IsAborted(status)) {
    return absl::UnavailableError(absl::StrCat("coordinator session expired; retry (", status.message(), ")"));
  }
  if (absl::IsCancelled(status)) return absl::DeadlineExceededError(status.message());
  return status;
}

}  // namespace coordd::core
