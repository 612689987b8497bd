#include "stats.h"

#include <algorithm>
#include <cmath>

namespace coordd::bench {

double micros(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double, std::micro>(to - from).count();
}

Percentiles percentiles(std::vector<double> samples) {
  Percentiles p;
  p.samples = samples.size();
  if (samples.empty()) return p;
  std::sort(samples.begin(), samples.end());
  // Nearest rank: the smallest sample with at least q of all samples at or
  // below it, so p99.9 of 1000 samples is the largest but one, not an
  // interpolation between samples nobody observed.
  const auto rank = [&](double q) {
    const auto at = static_cast<size_t>(std::ceil(q * static_cast<double>(samples.size())));
    return samples[std::clamp<size_t>(at, 1, samples.size()) - 1];
  };
  p.p50 = rank(0.50);
  p.p99 = rank(0.99);
  p.p999 = rank(0.999);
  p.max = samples.back();
  return p;
}

}  // namespace coordd::bench
