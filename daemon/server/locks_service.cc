#include <atomic>

#include "server/convert.h"
#include "server/services.h"

namespace coordd::server {
namespace {

// A blocking acquire that can be cancelled by its caller (disconnect or
// client-side deadline): the waiter is then removed from the queue.
class AcquireReactor final : public grpc::ServerUnaryReactor {
 public:
  AcquireReactor(core::Core& core, const v1::AcquireRequest& request, v1::AcquireResponse* response)
      : core_(core), session_id_(request.session_id()), name_(request.name()) {
    const int64_t waiter_id = core_.acquire(session_id_, name_, std::chrono::milliseconds(request.timeout_ms()),
                                            [this, response](absl::StatusOr<int64_t> token) {
                                              if (token.ok()) response->set_fencing_token(*token);
                                              Finish(toGrpc(token.status()));
                                            });
    // gRPC calls neither OnCancel nor OnDone before the method handler,
    // which runs this constructor, has returned: they see the id.
    waiter_id_.store(waiter_id);
    // The reply may already have run, on another thread.
    unref();
  }

  // The caller went away. Whether that removes a waiter or gives back a lock
  // granted meanwhile, whose answer it will never read, the core decides.
  void OnCancel() override {
    cancelled_.store(true);
    if (int64_t waiter_id = waiter_id_.load(); waiter_id != 0) core_.cancelAcquire(waiter_id);
  }
  void OnDone() override {
    if (int64_t waiter_id = waiter_id_.load(); waiter_id != 0 && !cancelled_.load()) {
      core_.acquireAnswered(waiter_id);
    }
    unref();
  }

 private:
  void unref() {
    if (refs_.fetch_sub(1) == 1) delete this;
  }

  core::Core& core_;
  const std::string session_id_;
  const std::string name_;
  std::atomic<int64_t> waiter_id_{0};
  std::atomic<bool> cancelled_{false};
  std::atomic<int> refs_{2};  // the constructor and OnDone
};

}  // namespace

grpc::ServerUnaryReactor* LocksService::TryAcquire(grpc::CallbackServerContext* context,
                                                   const v1::TryAcquireRequest* request,
                                                   v1::TryAcquireResponse* response) {
  if (auto* refused = refuse(context, access_)) return refused;
  auto* reactor = context->DefaultReactor();
  core_.tryAcquire(request->session_id(), request->name(),
                   [reactor, response](absl::StatusOr<core::TryAcquireResult> result) {
                     if (result.ok()) {
                       response->set_acquired(result->acquired);
                       response->set_fencing_token(result->token);
                       if (result->holder) {
                         toProto(result->holder->owner, response->mutable_holder());
                       }
                     }
                     reactor->Finish(toGrpc(result.status()));
                   });
  return reactor;
}

grpc::ServerUnaryReactor* LocksService::Acquire(grpc::CallbackServerContext* context, const v1::AcquireRequest* request,
                                                v1::AcquireResponse* response) {
  if (auto* refused = refuse(context, access_)) return refused;
  return new AcquireReactor(core_, *request, response);
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
