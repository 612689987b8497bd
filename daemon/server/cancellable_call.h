#pragma once

#include <atomic>
#include <functional>

#include "core/core.h"
#include "grpcpp/grpcpp.h"

namespace coordd::server {

// A TryAcquire, Acquire or Campaign, whose caller may give up (disconnect,
// client-side deadline) at any moment, the answer already on its way or not.
// What that undoes - a waiter queued, a call in flight, a grant made - the
// core decides under its lock (Core::cancelCall); once the call is done with
// its answer delivered, Core::callAnswered.
class CancellableCall final : public grpc::ServerUnaryReactor {
 public:
  using Done = std::function<void(const grpc::Status&)>;
  // `start` issues the core call with `finish` as the end of its reply, and
  // returns the call id.
  explicit CancellableCall(core::Core& core, const std::function<int64_t(Done finish)>& start) : core_(core) {
    const int64_t call_id = start([this](const grpc::Status& status) { Finish(status); });
    // gRPC calls neither OnCancel nor OnDone before the method handler, which
    // runs this constructor, has returned: they see the id.
    call_id_.store(call_id);
    // The reply may already have run, on another thread.
    unref();
  }

  void OnCancel() override {
    if (int64_t call_id = call_id_.load(); call_id != 0) core_.cancelCall(call_id);
  }
  // After OnCancel too (gRPC calls both): whatever cancelCall left ends here.
  void OnDone() override {
    if (int64_t call_id = call_id_.load(); call_id != 0) core_.callAnswered(call_id);
    unref();
  }

 private:
  void unref() {
    if (refs_.fetch_sub(1) == 1) delete this;
  }

  core::Core& core_;
  std::atomic<int64_t> call_id_{0};
  std::atomic<int> refs_{2};  // the constructor and OnDone
};

}  // namespace coordd::server
