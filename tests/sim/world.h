#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <tuple>

#include "backend/executor.h"

namespace coordd::sim {

using backend::Clock;
using namespace std::chrono_literals;

// Simulated time on one thread: every task of every simulated component is
// an event in one queue, run in time order (ties in the order posted), and
// the seeded RNG is the only source of choice. The same seed replays the
// same run.
class World {
 public:
  explicit World(uint64_t seed) : rng_(seed) {}

  Clock::time_point now() const { return now_; }
  std::mt19937_64& rng() { return rng_; }
  // A uniform draw in [lo, hi].
  int64_t uniform(int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng_); }
  bool chance(double p) { return std::bernoulli_distribution(p)(rng_); }

  void at(Clock::time_point when, std::function<void()> task) { at(when, seq_++, std::move(task)); }
  // The same, ordered among the events of `when` by `seq` (from nextSeq()):
  // an event put off keeps its place.
  void at(Clock::time_point when, uint64_t seq, std::function<void()> task);
  uint64_t nextSeq() { return seq_++; }
  // Runs the next event; false when none is left before `until`.
  bool step(Clock::time_point until);
  int64_t steps() const { return steps_; }

 private:
  std::mt19937_64 rng_;
  Clock::time_point now_{std::chrono::hours(1)};
  uint64_t seq_ = 0;
  int64_t steps_ = 0;
  std::map<std::pair<Clock::time_point, uint64_t>, std::function<void()>> events_;
};

// One component's thread: its tasks run in the order posted, each a little
// after the one before (a jitter the world's RNG picks), and not at all while
// it is frozen (a stopped process); a frozen strand runs its backlog in the
// order posted once thawed.
class Strand : public backend::Executor {
 public:
  explicit Strand(World& world) : world_(world) {}

  Clock::time_point now() const override { return world_.now(); }
  void post(std::function<void()> task) override;
  void postAt(Clock::time_point when, std::function<void()> task) override;

  // Nothing runs before `until`.
  void freezeUntil(Clock::time_point until);
  bool frozen() const { return world_.now() < frozen_until_; }

 private:
  void schedule(Clock::time_point when, std::function<void()> task);
  // Runs the task of event `seq`, or puts it off to the thaw, keeping its place.
  void run(uint64_t seq, std::function<void()> task);

  World& world_;
  Clock::time_point frozen_until_{};
  Clock::time_point last_{};  // when the latest posted task runs: FIFO
};

}  // namespace coordd::sim
