#pragma once

#include <chrono>
#include <ctime>
#include <functional>

namespace coordd::backend {

// The clock of every lease and deadline in the daemon: CLOCK_BOOTTIME, which
// goes on counting while the host is suspended (CLOCK_MONOTONIC stops, so a
// lease on it would outlive a suspend that the coordinator did not sleep
// through).
struct BootClock {
  using duration = std::chrono::nanoseconds;
  using rep = duration::rep;
  using period = duration::period;
  using time_point = std::chrono::time_point<BootClock>;
  static constexpr bool is_steady = true;
  static time_point now() noexcept {
    timespec ts{};
    clock_gettime(CLOCK_BOOTTIME, &ts);
    return time_point(std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec));
  }
};
using Clock = BootClock;

// Where a component's state lives and its tasks run, in the order posted,
// one at a time; with the clock its timers are on. A thread of its own in
// the daemon (SerialExecutor); simulated time on one thread in coordd-sim.
class Executor {
 public:
  virtual ~Executor() = default;
  virtual Clock::time_point now() const = 0;
  // Queues a task; never runs it inline.
  virtual void post(std::function<void()> task) = 0;
  // Queues a task to run once `when` has come.
  virtual void postAt(Clock::time_point when, std::function<void()> task) = 0;
};

}  // namespace coordd::backend
