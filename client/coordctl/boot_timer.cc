#include "boot_timer.h"

#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>

namespace coordd::ctl {

BootTimer::BootTimer() : fd_(::timerfd_create(CLOCK_BOOTTIME, TFD_NONBLOCK | TFD_CLOEXEC)) {}

BootTimer::~BootTimer() {
  if (fd_ >= 0) ::close(fd_);
}

void BootTimer::arm(std::optional<BootClock::time_point> at) {
  itimerspec spec{};
  if (at) {
    // An all-zero it_value disarms: a deadline at (or before) the clock's
    // origin is one nanosecond after it instead, long passed.
    const int64_t ns = std::max<int64_t>(1, at->time_since_epoch().count());
    spec.it_value.tv_sec = static_cast<time_t>(ns / 1000000000);
    spec.it_value.tv_nsec = static_cast<long>(ns % 1000000000);
  }
  ::timerfd_settime(fd_, TFD_TIMER_ABSTIME, &spec, nullptr);
}

void BootTimer::clear() {
  uint64_t expirations = 0;
  [[maybe_unused]] ssize_t got = ::read(fd_, &expirations, sizeof(expirations));
}

}  // namespace coordd::ctl
