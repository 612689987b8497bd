#pragma once

// Internal: the channel, and the one place gRPC calls turn into absl::Status.

#include <chrono>
#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "coordd/types.h"
#include "coordd/v1/coordd.grpc.pb.h"

namespace coordd::detail {

// Bound of every unary call that may touch the coordinator.
inline constexpr absl::Duration kCallTimeout = absl::Seconds(10);

struct Endpoint {
  std::string address;
  std::shared_ptr<grpc::Channel> channel;
};

// grpc::Status -> absl::Status, code for code, keeping the message. An
// UNAVAILABLE while the channel cannot connect says so and names the
// address, so users can tell "no daemon" from "daemon has no coordinator".
absl::Status toStatus(const Endpoint& endpoint, const grpc::Status& status);

void setTimeout(grpc::ClientContext& context, absl::Duration timeout);

// Runs one unary call with a fresh context bounded by `timeout`.
// `call(grpc::ClientContext*)` returns the grpc::Status of the stub call.
template <typename Call>
absl::Status unary(const Endpoint& endpoint, absl::Duration timeout, Call&& call) {
  grpc::ClientContext context;
  setTimeout(context, timeout);
  return toStatus(endpoint, call(&context));
}

LockState toLockState(v1::LockState state);
ElectionStatus toElectionStatus(v1::CandidateStatus status);

}  // namespace coordd::detail
