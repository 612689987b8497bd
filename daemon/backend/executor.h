#pragma once

#include <functional>

#include "coordd/boot_clock.h"

namespace coordd::backend {

// The clock of every lease and deadline in the daemon (CLOCK_BOOTTIME).
using Clock = coordd::BootClock;

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
