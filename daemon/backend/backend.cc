#include "backend/backend.h"

namespace coordd::backend {

const char* linkStateName(LinkState state) {
  switch (state) {
    case LinkState::kConnected:
      return "CONNECTED";
    case LinkState::kSuspended:
      return "SUSPENDED";
    case LinkState::kReconnected:
      return "RECONNECTED";
    case LinkState::kExpired:
      return "EXPIRED";
  }
  return "UNKNOWN";
}

}  // namespace coordd::backend
