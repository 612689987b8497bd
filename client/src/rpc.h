#pragma once

// Internal: the channel, and the one place gRPC calls turn into absl::Status.

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "coordd/types.h"
#include "coordd/v1/coordd.grpc.pb.h"

namespace coordd::detail {

// Bound of every unary call that may touch the coordinator.
inline constexpr absl::Duration kCallTimeout = absl::Seconds(10);

// The channel to one coordd, shared by a Client and all it makes.
//
// gRPC reads a connection only while a thread polls for it: during a call,
// or every 5 s from its backup poller. An idle connection would leave the
// daemon's GOAWAY unanswered, and coordd's shutdown would wait for it. So a
// thread keeps a connectivity watch on the channel, which has the connection
// read whenever it is open.
struct Endpoint {
  Endpoint(std::string address_in, std::shared_ptr<grpc::Channel> channel_in);
  // Destroys the channel, which ends the watch: stubs made from `channel`
  // must not outlive the Endpoint.
  ~Endpoint();
  Endpoint(const Endpoint&) = delete;
  Endpoint& operator=(const Endpoint&) = delete;

  const std::string address;
  std::shared_ptr<grpc::Channel> channel;

 private:
  void watch();

  std::mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  grpc::CompletionQueue watch_queue_;
  std::thread watcher_;
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
