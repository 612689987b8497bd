#pragma once

#include <deque>
#include <mutex>

#include <grpcpp/grpcpp.h>

#include "absl/base/thread_annotations.h"

namespace coordd::server {

// Queues messages for a server stream so that anyone may write at any time:
// gRPC allows one write in flight, the rest wait here. It outlives its
// reactor; after detach() writes are dropped.
//
// Reactor is a grpc::ServerBidiReactor<..., Message> or
// grpc::ServerWriteReactor<Message>; its OnWriteDone must call onWriteDone.
template <typename Reactor, typename Message>
class StreamWriter {
 public:
  static constexpr size_t kMaxQueued = 1024;

  explicit StreamWriter(Reactor* reactor) : reactor_(reactor) {}

  void write(Message message) {
    std::lock_guard<std::mutex> lock(mu_);
    if (reactor_ == nullptr || closing_) return;
    if (queue_.size() >= kMaxQueued) {
      // A peer that does not read would make the daemon hold its messages
      // for ever: end its stream instead.
      queue_.resize(writing_ ? 1 : 0);
      closing_ = true;
      final_status_ = grpc::Status(grpc::RESOURCE_EXHAUSTED, "stream not read: too many messages queued");
      finishIfIdle();
      return;
    }
    queue_.push_back(std::move(message));
    if (!writing_) {
      writing_ = true;
      reactor_->StartWrite(&queue_.front());
    }
  }

  // Finishes the stream with `status` once what is queued is written.
  void finish(const grpc::Status& status) {
    std::lock_guard<std::mutex> lock(mu_);
    if (closing_) return;
    closing_ = true;
    final_status_ = status;
    finishIfIdle();
  }

  // Finishes at once, dropping what is queued (the peer is gone or broke
  // the protocol).
  void abort(const grpc::Status& status) {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.resize(writing_ ? 1 : 0);
    closing_ = true;
    final_status_ = status;
    finishIfIdle();
  }

  void onWriteDone(bool ok) {
    std::lock_guard<std::mutex> lock(mu_);
    writing_ = false;
    if (!queue_.empty()) queue_.pop_front();
    if (!ok) {
      queue_.clear();
      closing_ = true;
    }
    if (reactor_ != nullptr && !queue_.empty()) {
      writing_ = true;
      reactor_->StartWrite(&queue_.front());
      return;
    }
    if (closing_) finishIfIdle();
  }

  // Called from OnDone: nothing touches the reactor afterwards.
  void detach() {
    std::lock_guard<std::mutex> lock(mu_);
    reactor_ = nullptr;
  }

 private:
  void finishIfIdle() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (reactor_ == nullptr || writing_ || finished_) return;
    finished_ = true;
    reactor_->Finish(final_status_);
  }

  std::mutex mu_;
  Reactor* reactor_ ABSL_GUARDED_BY(mu_);
  std::deque<Message> queue_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool closing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status final_status_ ABSL_GUARDED_BY(mu_) = grpc::Status::OK;
};

}  // namespace coordd::server
