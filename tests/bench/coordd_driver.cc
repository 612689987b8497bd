#include "coordd_driver.h"

#include <stdexcept>

#include "absl/strings/str_cat.h"

namespace coordd::bench {

CoorddLockDriver::CoorddLockDriver(const std::string& address) {
  auto client = Client::connect(address);
  if (!client.ok()) throw std::runtime_error(client.status().ToString());
  client_ = std::move(*client);
}

void CoorddLockDriver::prepare(int clients) {
  for (int k = static_cast<int>(sessions_.size()); k < clients; ++k) {
    SessionOptions options;
    options.owner = absl::StrCat("bench-client-", k);
    auto session = client_->openSession(std::move(options));
    if (!session.ok()) throw std::runtime_error("coordd session: " + session.status().ToString());
    sessions_.push_back(std::move(*session));
    names_.push_back(absl::StrCat("bench-cycle-", k));
  }
}

absl::Status CoorddLockDriver::cycle(int client) {
  const auto k = static_cast<size_t>(client);
  absl::StatusOr<TryLockResult> result = sessions_[k]->tryLock(names_[k]);
  if (!result.ok()) return result.status();
  if (!result->acquired()) return absl::AbortedError(absl::StrCat(names_[k], " held by ", result->holder.owner));
  return result->guard->release();
}

absl::StatusOr<bool> CoorddLockDriver::attempt(int client, int lock) {
  absl::StatusOr<TryLockResult> result =
      sessions_[static_cast<size_t>(client)]->tryLock(absl::StrCat("bench-contended-", lock));
  if (!result.ok()) return result.status();
  if (!result->acquired()) return false;
  absl::Status released = result->guard->release();
  if (!released.ok()) return released;
  return true;
}

HealthCall::HealthCall(std::shared_ptr<grpc::Channel> channel) : stub_(std::move(channel)) {}

HealthCall::~HealthCall() {
  queue_.Shutdown();
  void* tag = nullptr;
  bool ok = false;
  while (queue_.Next(&tag, &ok)) {
  }
}

bool HealthCall::call() {
  // HealthCheckRequest{service = ""} is the empty message: one empty slice.
  grpc::Slice empty;
  const grpc::ByteBuffer request(&empty, 1);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  grpc::ByteBuffer response;
  grpc::Status status;
  auto rpc = stub_.PrepareUnaryCall(&context, "/grpc.health.v1.Health/Check", request, &queue_);
  rpc->StartCall();
  rpc->Finish(&response, &status, &context);
  void* tag = nullptr;
  bool ok = false;
  return queue_.Next(&tag, &ok) && ok && status.ok();
}

GrpcFloorDriver::GrpcFloorDriver(const std::string& address)
    : channel_(grpc::CreateChannel(address, grpc::InsecureChannelCredentials())) {}

void GrpcFloorDriver::prepare(int clients) {
  while (static_cast<int>(calls_.size()) < clients) calls_.push_back(std::make_unique<HealthCall>(channel_));
}

absl::Status GrpcFloorDriver::cycle(int client) {
  HealthCall& calls = *calls_[static_cast<size_t>(client)];
  if (!calls.call() || !calls.call()) return absl::UnavailableError("Health/Check failed");
  return absl::OkStatus();
}

}  // namespace coordd::bench
