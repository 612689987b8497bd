#include "world.h"

namespace coordd::sim {

void World::at(Clock::time_point when, std::function<void()> task) {
  events_.emplace(std::make_pair(std::max(when, now_), seq_++), std::move(task));
}

bool World::step(Clock::time_point until) {
  if (events_.empty() || events_.begin()->first.first > until) return false;
  auto node = events_.extract(events_.begin());
  now_ = node.key().first;
  ++steps_;
  node.mapped()();
  return true;
}

void Strand::post(std::function<void()> task) {
  // A little later than the latest task posted, never before it.
  const Clock::time_point when = std::max(last_, world_.now() + std::chrono::microseconds(world_.uniform(1, 300)));
  last_ = when;
  schedule(when, std::move(task));
}

void Strand::postAt(Clock::time_point when, std::function<void()> task) { schedule(when, std::move(task)); }

void Strand::schedule(Clock::time_point when, std::function<void()> task) {
  world_.at(when, [this, task = std::move(task)]() mutable {
    if (frozen()) {
      // Runs once thawed, in the order it would have.
      const Clock::time_point thaw = frozen_until_;
      last_ = std::max(last_, thaw);
      world_.at(thaw, [this, task = std::move(task)]() mutable { schedule(world_.now(), std::move(task)); });
      return;
    }
    task();
  });
}

void Strand::freezeUntil(Clock::time_point until) { frozen_until_ = std::max(frozen_until_, until); }

}  // namespace coordd::sim
