#include "backend/serial_executor.h"

namespace coordd::backend {

SerialExecutor::SerialExecutor() : thread_([this] { run(); }) {}

SerialExecutor::~SerialExecutor() { stop(); }

void SerialExecutor::post(std::function<void()> task) {
  std::lock_guard<std::mutex> lock(mu_);
  if (finished_) return;
  tasks_.push_back(std::move(task));
  cv_.notify_one();
}

void SerialExecutor::postAt(Clock::time_point when, std::function<void()> task) {
  std::lock_guard<std::mutex> lock(mu_);
  if (stopping_) return;
  timers_.emplace(when, std::move(task));
  cv_.notify_one();
}

void SerialExecutor::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    timers_.clear();
    cv_.notify_one();
  }
  if (thread_.joinable() && !onExecutorThread()) thread_.join();
}

void SerialExecutor::run() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    // Due timers join the queue in order.
    while (!timers_.empty() && timers_.begin()->first <= Clock::now()) {
      tasks_.push_back(std::move(timers_.begin()->second));
      timers_.erase(timers_.begin());
    }
    if (tasks_.empty()) {
      if (stopping_) {  // everything queued has run
        finished_ = true;
        return;
      }
      if (timers_.empty()) {
        cv_.wait(lock);
      } else {
        // A copy: stop() may free the timer while this waits on it.
        const Clock::time_point next = timers_.begin()->first;
        cv_.wait_until(lock, next);
      }
      continue;
    }
    auto task = std::move(tasks_.front());
    tasks_.pop_front();
    lock.unlock();
    task();
    lock.lock();
  }
}

}  // namespace coordd::backend
