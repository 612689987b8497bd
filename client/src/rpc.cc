#include "rpc.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "coordd/admin.h"

namespace coordd::detail {

// gRPC and Abseil both use the canonical codes, with the same numbers.
static_assert(static_cast<int>(grpc::StatusCode::UNAVAILABLE) == static_cast<int>(absl::StatusCode::kUnavailable));
static_assert(static_cast<int>(grpc::StatusCode::UNAUTHENTICATED) ==
              static_cast<int>(absl::StatusCode::kUnauthenticated));

Endpoint::Endpoint(std::string address_in, std::shared_ptr<grpc::Channel> channel_in)
    : address(std::move(address_in)), channel(std::move(channel_in)), watcher_([this] { watch(); }) {}

Endpoint::~Endpoint() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    // The last reference: the channel shuts down, which completes the watch.
    channel.reset();
  }
  watcher_.join();
}

void Endpoint::watch() {
  void* tag = nullptr;
  bool ok = false;
  for (;;) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) break;
      // Waiting on the queue below polls the channel's connection.
      channel->NotifyOnStateChange(channel->GetState(/*try_to_connect=*/false), gpr_inf_future(GPR_CLOCK_REALTIME),
                                   &watch_queue_, nullptr);
    }
    if (!watch_queue_.Next(&tag, &ok)) break;
  }
  watch_queue_.Shutdown();
  while (watch_queue_.Next(&tag, &ok)) {
  }
}

absl::Status toStatus(const Endpoint& endpoint, const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  const auto code = static_cast<absl::StatusCode>(status.error_code());
  if (code == absl::StatusCode::kUnavailable &&
      endpoint.channel->GetState(/*try_to_connect=*/false) != GRPC_CHANNEL_READY) {
    return absl::Status(code, absl::StrCat("cannot reach coordd at ", endpoint.address, ": ", status.error_message()));
  }
  return absl::Status(code, status.error_message());
}

void setTimeout(grpc::ClientContext& context, absl::Duration timeout) {
  context.set_deadline(std::chrono::system_clock::now() + absl::ToChronoMilliseconds(timeout));
}

LockState toLockState(v1::LockState state) {
  switch (state) {
    case v1::LOCK_STATE_HELD:
    case v1::LOCK_STATE_RESTORED:
      return LockState::kHeld;
    case v1::LOCK_STATE_SUSPENDED:
      return LockState::kSuspended;
    default:  // LOST, NOT_HELD: not ours any more
      return LockState::kLost;
  }
}

ElectionStatus toElectionStatus(v1::CandidateStatus status) {
  switch (status) {
    case v1::CANDIDATE_STATUS_PRIMARY:
      return ElectionStatus::kPrimary;
    case v1::CANDIDATE_STATUS_SECONDARY:
      return ElectionStatus::kSecondary;
    case v1::CANDIDATE_STATUS_SUSPENDED:
      return ElectionStatus::kSuspended;
    case v1::CANDIDATE_STATUS_TERMINATED:
      return ElectionStatus::kTerminated;
    default:
      return ElectionStatus::kNotCandidate;
  }
}

}  // namespace coordd::detail

namespace coordd {

Owner toOwner(const v1::OwnerRecord& record) {
  return Owner{record.node_id(), record.session_id(), record.owner(),
               std::map<std::string, std::string>(record.attributes().begin(), record.attributes().end())};
}

absl::string_view toString(LockState state) {
  switch (state) {
    case LockState::kHeld:
      return "held";
    case LockState::kSuspended:
      return "suspended";
    case LockState::kLost:
      return "lost";
    case LockState::kReleased:
      return "released";
  }
  return "unknown";
}

absl::string_view toString(ElectionStatus status) {
  switch (status) {
    case ElectionStatus::kNotCandidate:
      return "not-candidate";
    case ElectionStatus::kPrimary:
      return "primary";
    case ElectionStatus::kSecondary:
      return "secondary";
    case ElectionStatus::kSuspended:
      return "suspended";
    case ElectionStatus::kTerminated:
      return "terminated";
  }
  return "unknown";
}

}  // namespace coordd
