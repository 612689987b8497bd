#pragma once

#include <chrono>
#include <ctime>

namespace coordd {

// The clock of every lease and deadline, in the daemon and in the client
// library: CLOCK_BOOTTIME, which goes on counting while the host is
// suspended. CLOCK_MONOTONIC (steady_clock) stops, so a lease on it would
// outlive a suspend that the coordinator and the other hosts did not sleep
// through.
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

}  // namespace coordd
