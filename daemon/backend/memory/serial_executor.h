#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

#include "absl/base/thread_annotations.h"

namespace coordd::backend::memory {

// One thread running posted tasks in order: the embedded coordinator's
// equivalent of the ZooKeeper client's completion thread.
class SerialExecutor {
 public:
  SerialExecutor();
  ~SerialExecutor();

  // Queues a task; never runs it inline. Tasks posted after stop() are
  // dropped.
  void post(std::function<void()> task);
  // Runs what is queued, then joins the thread. Idempotent.
  void stop();
  bool onExecutorThread() const { return std::this_thread::get_id() == thread_.get_id(); }

 private:
  void run();

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace coordd::backend::memory
