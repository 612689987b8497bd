#include "world.h"

namespace coordd::sim {

void World::at(Clock::time_point when, uint64_t seq, std::function<void()> task) {
  events_.emplace(std::make_pair(std::max(when, now_), seq), std::move(task));
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
  const uint64_t seq = world_.nextSeq();
  world_.at(when, seq, [this, seq, task = std::move(task)]() mutable { run(seq, std::move(task)); });
}

void Strand::run(uint64_t seq, std::function<void()> task) {
  if (!frozen()) return task();
  // Once thawed, in its place among what was posted: tasks are numbered in
  // the order posted.
  world_.at(frozen_until_, seq, [this, seq, task = std::move(task)]() mutable { run(seq, std::move(task)); });
}

void Strand::freezeUntil(Clock::time_point until) { frozen_until_ = std::max(frozen_until_, until); }

}  // namespace coordd::sim
