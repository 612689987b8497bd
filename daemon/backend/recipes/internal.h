#pragma once

// What the recipes' files share: node naming and the connected-call guard.
// Included by backend/recipes/*.cc only.

#include <algorithm>
#include <string>
#include <vector>

#include "backend/recipes/keeper_backend.h"

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

// What a fan-out of reads came to: the first failure other than a node gone
// meanwhile (a partial answer is not an answer), else kOk.
inline Code worst(Code so_far, Code code) {
  return so_far == Code::kOk && code != Code::kOk && code != Code::kNoNode ? code : so_far;
}

template <typename T>
void KeeperBackend::whenConnected(T done, std::function<void()> body) {
  executor_->post([this, done = std::move(done), body = std::move(body)]() mutable {
    if (auto status = usable(); !status.ok()) return done(status);
    body();
  });
}

}  // namespace coordd::backend::recipes
