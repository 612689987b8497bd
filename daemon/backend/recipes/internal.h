#pragma once

// What the recipes' files share: node naming and the connected-call guard.
// Included by backend/recipes/*.cc only.

#include <algorithm>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "backend/recipes/keeper_backend.h"
#include "coordd/check.h"

namespace coordd::backend::recipes {

using keeper::codeName;
using keeper::toStatus;

inline constexpr char kWaiterPrefix[] = "waiter-";
inline constexpr char kCandidatePrefix[] = "candidate-";
// The election Replicante's cleaner uses too: its primary cleans.
inline constexpr char kCleanerElection[] = "zookeeper-cleaner";

inline std::string parentOf(const std::string& path) { return path.substr(0, path.rfind('/')); }
inline std::string baseOf(const std::string& path) { return path.substr(path.rfind('/') + 1); }

// Children named prefix<sequence>, in sequence order.
inline std::vector<std::string> sequenced(std::vector<std::string> children, const std::string& prefix) {
  // Foreign or malformed children (no 10-digit sequence) take no part.
  children.erase(
      std::remove_if(children.begin(), children.end(),
                     [&](const std::string& c) { return c.rfind(prefix, 0) != 0 || c.size() < prefix.size() + 10; }),
      children.end());
  std::sort(children.begin(), children.end(), [&](const std::string& a, const std::string& b) {
    return a.substr(a.size() - 10) < b.substr(b.size() - 10);
  });
  return children;
}

inline absl::Status notHeld(const std::string& name, int64_t token) {
  return absl::NotFoundError(absl::StrCat("lock '", name, "' is not held with token ", token));
}

// Whether a read failed: a node gone meanwhile is not a failure, it is only
// missing from what the read finds.
inline bool failed(Code code) { return code != Code::kOk && code != Code::kNoNode; }
inline bool failed(const absl::Status& status) { return !status.ok() && !absl::IsNotFound(status); }

// Gathers the answers of calls issued at once. Each answer adds its part and
// its outcome; the last one runs `done`, once, with what they gathered, or
// with the first failure and nothing (a partial answer is not an answer).
template <typename Gathered, typename Outcome>
class FanIn {
 public:
  using Done = std::function<void(Outcome, Gathered)>;
  FanIn(size_t calls, Done done, Gathered gathered = {})
      : pending_(calls), done_(std::move(done)), gathered_(std::move(gathered)) {}

  template <typename Add>
  void answer(Outcome outcome, Add add) {
    add(gathered_);
    if (!failed(failure_) && failed(outcome)) failure_ = std::move(outcome);
    if (--pending_ > 0) return;
    if (failed(failure_)) return done_(std::move(failure_), Gathered{});
    done_(Outcome{}, std::move(gathered_));
  }

 private:
  size_t pending_;
  Done done_;
  Gathered gathered_;
  Outcome failure_{};
};

template <typename T>
void KeeperBackend::whenConnected(T done, std::function<void()> body) {
  executor_->post([this, done = std::move(done), body = std::move(body)]() mutable {
    if (auto status = usable(); !status.ok()) return done(status);
    body();
  });
}

template <typename Table, typename Entry>
auto KeeperBackend::newRound(Table& table, const typename Table::key_type& key, int64_t Entry::*field) {
  const int64_t round = mustFind(table, key).*field = next_round_++;
  const int64_t generation = generation_;
  return [this, &table, key, field, round, generation]() -> Entry* {
    auto it = table.find(key);
    if (generation != generation_ || it == table.end() || it->second.*field != round) return nullptr;
    return &it->second;
  };
}

}  // namespace coordd::backend::recipes
