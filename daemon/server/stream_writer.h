#pragma once

#include <deque>
#include <map>
#include <mutex>
#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/base/thread_annotations.h"

namespace coordd::server {

// Queues messages for a server stream so that anyone may write at any time:
// gRPC allows one write in flight, the rest wait here. It outlives its
// reactor; after detach() writes are dropped.
//
// A message may carry a key (a lock and its token, an election): a newer
// message with the key of one still queued replaces it in its place, so a
// burst of state changes for many holds queues at most one message per hold,
// the latest. A reader too slow for `max_queued` messages has its stream
// ended.
//
// Reactor is a grpc::ServerBidiReactor<..., Message> or
// grpc::ServerWriteReactor<Message>; its OnWriteDone must call onWriteDone.
template <typename Reactor, typename Message>
class StreamWriter {
 public:
  static constexpr size_t kMaxQueued = 1024;

  explicit StreamWriter(Reactor* reactor, size_t max_queued = kMaxQueued)
      : reactor_(reactor), max_queued_(max_queued) {}

  void write(Message message, std::string key = {}) {
    std::lock_guard<std::mutex> lock(mu_);
    if (reactor_ == nullptr || closing_) return;
    if (!key.empty()) {
      if (auto it = queued_.find(key); it != queued_.end()) {
        queue_[it->second - popped_].message = std::move(message);
        return;
      }
    }
    if (queue_.size() >= max_queued_) {
      // A peer that does not read would make the daemon hold its messages
      // for ever: end its stream instead.
      drop(writing_ ? 1 : 0);
      closing_ = true;
      final_status_ = grpc::Status(grpc::RESOURCE_EXHAUSTED, "stream not read: too many messages queued");
      finishIfIdle();
      return;
    }
    if (!key.empty()) queued_[key] = popped_ + queue_.size();
    queue_.push_back(Entry{std::move(message), std::move(key)});
    if (!writing_) startWrite();
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
    drop(writing_ ? 1 : 0);
    closing_ = true;
    final_status_ = status;
    finishIfIdle();
  }

  void onWriteDone(bool ok) {
    std::lock_guard<std::mutex> lock(mu_);
    writing_ = false;
    if (!queue_.empty()) {
      queue_.pop_front();
      ++popped_;
    }
    if (!ok) {
      drop(0);
      closing_ = true;
    }
    if (reactor_ != nullptr && !queue_.empty()) {
      startWrite();
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
  struct Entry {
    Message message;
    std::string key;
  };

  // Writes the front; from now on no newer message replaces it.
  void startWrite() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Entry& front = queue_.front();
    if (!front.key.empty()) queued_.erase(front.key);
    writing_ = true;
    reactor_->StartWrite(&front.message);
  }

  // Keeps the first `keep` messages (the one being written) and drops the rest.
  void drop(size_t keep) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (keep == 0) popped_ += queue_.size();
    queue_.resize(std::min(keep, queue_.size()));
    queued_.clear();  // the one being written has left it already
  }

  void finishIfIdle() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (reactor_ == nullptr || writing_ || finished_) return;
    finished_ = true;
    reactor_->Finish(final_status_);
  }

  std::mutex mu_;
  Reactor* reactor_ ABSL_GUARDED_BY(mu_);
  const size_t max_queued_;
  std::deque<Entry> queue_ ABSL_GUARDED_BY(mu_);
  // Key -> position of its message, counted from the first ever queued.
  std::map<std::string, uint64_t> queued_ ABSL_GUARDED_BY(mu_);
  uint64_t popped_ ABSL_GUARDED_BY(mu_) = 0;  // messages written or dropped from the front
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool closing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status final_status_ ABSL_GUARDED_BY(mu_) = grpc::Status::OK;
};

}  // namespace coordd::server
