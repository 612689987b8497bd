#include "lock_cycle.h"

#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace coordd::bench {

namespace {

// Runs `clients` threads calling `step` back to back over the same window;
// a step answers whether it got the lock.
CyclePoint runPoint(int clients, std::chrono::milliseconds warmup, std::chrono::milliseconds measure,
                    const std::function<absl::StatusOr<bool>(int client)>& step) {
  // Every thread gets the same window, fixed before any starts: a thread
  // that starts late only misses part of its warmup.
  const Clock::time_point start =
      Clock::now() + std::chrono::milliseconds(100) + clients * std::chrono::microseconds(200);
  const Clock::time_point window_start = start + warmup;
  const Clock::time_point window_end = window_start + measure;

  std::mutex mu;
  CyclePoint point;
  point.clients = clients;
  point.seconds = std::chrono::duration<double>(measure).count();
  std::vector<double> latencies;

  auto client = [&](int k) {
    std::vector<double> mine;  // merged at the end: no lock while cycling
    int64_t acquired = 0;
    int64_t errors = 0;
    std::string first_error;
    std::this_thread::sleep_until(start);
    for (;;) {
      const Clock::time_point begin = Clock::now();
      if (begin >= window_end) break;
      const absl::StatusOr<bool> got = step(k);
      const Clock::time_point end = Clock::now();
      if (end < window_start || end > window_end) continue;
      if (got.ok()) {
        mine.push_back(micros(begin, end));
        acquired += *got ? 1 : 0;
      } else {
        if (errors++ == 0) first_error = got.status().ToString();
      }
    }
    std::lock_guard<std::mutex> lock(mu);
    latencies.insert(latencies.end(), mine.begin(), mine.end());
    point.acquired += acquired;
    point.errors += errors;
    if (point.first_error.empty()) point.first_error = first_error;
  };

  std::vector<std::thread> threads;
  threads.reserve(static_cast<size_t>(clients));
  for (int k = 0; k < clients; ++k) threads.emplace_back(client, k);
  for (auto& thread : threads) thread.join();

  point.cycles = static_cast<int64_t>(latencies.size());
  point.latency_us = percentiles(std::move(latencies));
  return point;
}

}  // namespace

CyclePoint runCyclePoint(LockDriver& driver, int clients, std::chrono::milliseconds warmup,
                         std::chrono::milliseconds measure) {
  driver.prepare(clients);
  return runPoint(clients, warmup, measure, [&](int k) -> absl::StatusOr<bool> {
    absl::Status status = driver.cycle(k);
    if (!status.ok()) return status;
    return true;
  });
}

CyclePoint runContendedPoint(TryLockDriver& driver, int clients, int locks, std::chrono::milliseconds warmup,
                             std::chrono::milliseconds measure) {
  driver.prepare(clients);
  return runPoint(clients, warmup, measure, [&](int k) { return driver.attempt(k, k % locks); });
}

}  // namespace coordd::bench
