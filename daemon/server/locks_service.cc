#include "server/cancellable_call.h"
#include "server/convert.h"
#include "server/services.h"

namespace coordd::server {

grpc::ServerUnaryReactor* LocksService::TryAcquire(grpc::CallbackServerContext* context,
                                                   const v1::TryAcquireRequest* request,
                                                   v1::TryAcquireResponse* response) {
  if (auto* refused = refuse(context, access_)) return refused;
  return new CancellableCall(core_, [&](CancellableCall::Done finish) {
    return core_.tryAcquire(request->session_id(), request->name(),
                            [finish, response](absl::StatusOr<core::TryAcquireResult> result) {
                              if (result.ok()) {
                                response->set_acquired(result->acquired);
                                response->set_fencing_token(result->token);
                                if (result->holder) toProto(result->holder->owner, response->mutable_holder());
                              }
                              finish(toGrpc(result.status()));
                            });
  });
}

grpc::ServerUnaryReactor* LocksService::Acquire(grpc::CallbackServerContext* context, const v1::AcquireRequest* request,
                                                v1::AcquireResponse* response) {
  if (auto* refused = refuse(context, access_)) return refused;
  return new CancellableCall(core_, [&](CancellableCall::Done finish) {
    return core_.acquire(request->session_id(), request->name(), std::chrono::milliseconds(request->timeout_ms()),
                         [finish, response](absl::StatusOr<int64_t> token) {
                           if (token.ok()) response->set_fencing_token(*token);
                           finish(toGrpc(token.status()));
                         });
  });
}

grpc::ServerUnaryReactor* LocksService::Release(grpc::CallbackServerContext* context, const v1::ReleaseRequest* request,
                                                v1::ReleaseResponse* response) {
  if (auto* refused = refuse(context, access_)) return refused;
  auto* reactor = context->DefaultReactor();
  core_.release(request->session_id(), request->name(),
                [reactor](absl::Status status) { reactor->Finish(toGrpc(status)); });
  return reactor;
}

grpc::ServerUnaryReactor* LocksService::Check(grpc::CallbackServerContext* context, const v1::CheckRequest* request,
                                              v1::CheckResponse* response) {
  if (auto* refused = refuse(context, access_)) return refused;
  auto* reactor = context->DefaultReactor();
  auto result = core_.check(request->session_id(), request->name());
  if (result.ok()) {
    response->set_state(toProto(result->state));
    response->set_fencing_token(result->token);
  }
  reactor->Finish(toGrpc(result.status()));
  return reactor;
}

}  // namespace coordd::server
