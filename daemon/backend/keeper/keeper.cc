#include "backend/keeper/keeper.h"

#include "absl/strings/str_cat.h"

namespace coordd::backend::keeper {

const char* codeName(Code code) {
  switch (code) {
    case Code::kOk:
      return "ok";
    case Code::kNoNode:
      return "no node";
    case Code::kNodeExists:
      return "node exists";
    case Code::kConnectionLoss:
      return "connection loss";
    case Code::kOperationTimeout:
      return "operation timeout";
    case Code::kClosing:
      return "session closing";
    case Code::kInvalidState:
      return "invalid session state";
    case Code::kNoAuth:
      return "not authenticated";
    case Code::kAuthFailed:
      return "authentication failed";
    case Code::kSessionExpired:
      return "session expired";
    case Code::kSessionMoved:
      return "session moved";
    case Code::kBadVersion:
      return "bad version";
    case Code::kNotEmpty:
      return "not empty";
    case Code::kNoChildrenForEphemerals:
      return "no children for ephemerals";
    case Code::kBadArguments:
      return "bad arguments";
    case Code::kUnimplemented:
      return "unimplemented";
    case Code::kNotApplied:
      return "not applied (another op of the transaction failed)";
    case Code::kOther:
      break;
  }
  return "error";
}

absl::Status toStatus(Code code, const std::string& what) {
  std::string message = absl::StrCat(what, ": ", codeName(code));
  switch (code) {
    case Code::kOk:
      return absl::OkStatus();
    case Code::kNoNode:
      return absl::NotFoundError(message);
    case Code::kNodeExists:
      return absl::AlreadyExistsError(message);
    case Code::kConnectionLoss:
    case Code::kOperationTimeout:
    case Code::kClosing:
    case Code::kInvalidState:
      return absl::UnavailableError(message);
    case Code::kNoAuth:
    case Code::kAuthFailed:
      return absl::PermissionDeniedError(message);
    case Code::kSessionExpired:
    case Code::kSessionMoved:
      return absl::AbortedError(message);
    case Code::kBadVersion:
    case Code::kNotEmpty:
    case Code::kNoChildrenForEphemerals:
      return absl::FailedPreconditionError(message);
    case Code::kBadArguments:
      return absl::InvalidArgumentError(message);
    case Code::kUnimplemented:
    case Code::kNotApplied:
    case Code::kOther:
      break;
  }
  return absl::InternalError(message);
}

}  // namespace coordd::backend::keeper
