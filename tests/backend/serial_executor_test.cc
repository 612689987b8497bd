#include <atomic>
#include <catch2/catch.hpp>
#include <vector>

#include "backend/serial_executor.h"

using coordd::backend::SerialExecutor;

TEST_CASE("executor: tasks run in the order they were posted", "[executor]") {
  std::vector<int> order;
  {
    SerialExecutor executor;
    for (int i = 0; i < 100; ++i) executor.post([&order, i] { order.push_back(i); });
    executor.stop();
  }
  REQUIRE(order.size() == 100);
  for (int i = 0; i < 100; ++i) CHECK(order[static_cast<size_t>(i)] == i);
}

TEST_CASE("executor: a task posted while stop() drains the queue still runs", "[executor]") {
  // A backend's stop() closes its coordinator session in a task; the
  // completions that closing delivers are posted during the drain, and
  // each must run exactly once (callers wait on them).
  SerialExecutor executor;
  std::atomic<bool> ran{false};
  executor.post([&] {
    executor.stop();  // from the executor thread: stops, does not join
    executor.post([&] { ran = true; });
  });
  executor.stop();
  CHECK(ran);
}

TEST_CASE("executor: timers are dropped by stop(), and so are tasks once it has finished", "[executor]") {
  SerialExecutor executor;
  std::atomic<bool> timer_ran{false};
  std::atomic<bool> late_ran{false};
  executor.postAt(coordd::backend::Clock::now() + std::chrono::hours(1), [&] { timer_ran = true; });
  executor.stop();
  executor.post([&] { late_ran = true; });
  executor.stop();
  CHECK_FALSE(timer_ran);
  CHECK_FALSE(late_ran);
}
