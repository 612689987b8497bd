#pragma once

#include <chrono>
#include <cstdint>
#include <vector>

namespace coordd::bench {

using Clock = std::chrono::steady_clock;

// Microseconds between two points of Clock, as a double.
double micros(Clock::time_point from, Clock::time_point to);

// Percentiles of a set of samples, in the unit the samples were given in.
struct Percentiles {
  size_t samples = 0;
  double p50 = 0;
  double p99 = 0;
  double p999 = 0;
  double max = 0;
};

// Nearest-rank percentiles of `samples` (sorted here, hence by value).
// All zero when there are none.
Percentiles percentiles(std::vector<double> samples);

}  // namespace coordd::bench
