#pragma once

#include <optional>

#include "coordd/boot_clock.h"

namespace coordd::ctl {

// A file descriptor that turns readable once a BootClock deadline has come,
// for poll(). poll()'s own timeout runs on CLOCK_MONOTONIC, which stops while
// the host is suspended: a lease's end waited for that way would come late
// by the length of the suspend. This is a timerfd on CLOCK_BOOTTIME.
class BootTimer {
 public:
  // fd() is negative if the kernel refused a timer.
  BootTimer();
  ~BootTimer();
  BootTimer(const BootTimer&) = delete;
  BootTimer& operator=(const BootTimer&) = delete;

  int fd() const { return fd_; }
  // Readable from `at` on (at once if it has passed); none: never.
  void arm(std::optional<BootClock::time_point> at);
  // Consumes a wake-up, so that the fd is not readable until the next one.
  void clear();

 private:
  const int fd_;
};

}  // namespace coordd::ctl
