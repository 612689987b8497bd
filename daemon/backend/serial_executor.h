#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "backend/executor.h"

namespace coordd::backend {

// One thread running posted tasks in order: a backend's own thread, on which
// its state lives and its callbacks run.
class SerialExecutor : public Executor {
 public:
  SerialExecutor();
  ~SerialExecutor() override;

  Clock::time_point now() const override { return Clock::now(); }

  // Queues a task; never runs it inline. A task posted while stop() drains
  // the queue (by a queued task, or a completion it awaits) still runs; only
  // once the thread has finished are tasks dropped.
  void post(std::function<void()> task) override;
  // Queues a task to run once `when` has come (timers). Dropped by stop().
  void postAt(Clock::time_point when, std::function<void()> task) override;
  // Runs what is queued, and what that posts, but not the timers; then joins
  // the thread. Idempotent.
  void stop();
  bool onExecutorThread() const { return std::this_thread::get_id() == thread_.get_id(); }

 private:
  void run();

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_ ABSL_GUARDED_BY(mu_);
  std::multimap<Clock::time_point, std::function<void()>> timers_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;  // the thread has returned
  std::thread thread_;
};

}  // namespace coordd::backend
