#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "lock_driver.h"
#include "stats.h"

namespace coordd::bench {

// One point of the lock-cycle workload: `clients` threads, each cycling its
// own lock as fast as it can.
struct CyclePoint {
  int clients = 0;
  double seconds = 0;    // length of the measured window
  int64_t cycles = 0;    // completed within the window (contended: attempts answered)
  int64_t acquired = 0;  // of those, the ones that got the lock (lock cycle: all)
  int64_t errors = 0;    // failed within the window (not in `cycles`)
  std::string first_error;
  Percentiles latency_us;  // of the completed cycles

  double perSecond() const { return seconds > 0 ? static_cast<double>(cycles) / seconds : 0; }
  double acquiredPerSecond() const { return seconds > 0 ? static_cast<double>(acquired) / seconds : 0; }
};

// Runs `clients` std::threads, one per client, each calling driver.cycle()
// back to back (synchronous calls: a thread is a client waiting on its
// answer, as a process using a blocking client would). The first `warmup`
// is not counted (connections, caches, JIT of the servers); then every cycle
// that ends within the next `measure` counts, by its end time.
CyclePoint runCyclePoint(LockDriver& driver, int clients, std::chrono::milliseconds warmup,
                         std::chrono::milliseconds measure);

// One point of the contended workload: `clients` threads as above, client k
// making attempts at shared lock k % `locks` back to back. `cycles` counts
// the attempts, `acquired` those that got the lock.
CyclePoint runContendedPoint(TryLockDriver& driver, int clients, int locks, std::chrono::milliseconds warmup,
                             std::chrono::milliseconds measure);

}  // namespace coordd::bench
