// What keeps the tree tidy: re-arming after a reconnect, the cleaner of
// empty parents, and the reconciler of orphans.
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "backend/recipes/internal.h"
#include "spdlog/spdlog.h"

namespace coordd::backend::recipes {

void KeeperBackend::rearmAll() {
  // Lock watches are in the watch session, which keeps them across this
  // session's reconnects; set again are those a failed check left unset.
  std::vector<std::string> names;
  for (const auto& [name, held] : locks_) {
    if (!held.armed) names.push_back(name);
  }
  for (const auto& name : names) watchLock(name);
  std::vector<std::pair<int64_t, bool>> terms;  // term, own watch armed
  for (const auto& [term, held] : candidates_) {
    if (!held.armed || !held.pred_armed) terms.emplace_back(term, held.armed);
  }
  for (const auto& [term, armed] : terms) {
    if (!armed) watchOwnCandidate(term);
    evaluateCandidate(term, nullptr);  // keeps an armed predecessor watch
  }
  std::vector<int64_t> waiters;
  for (const auto& [id, waiter] : waiters_) {
    if (!waiter.armed) waiters.push_back(id);
  }
  for (int64_t id : waiters) evaluateWaiter(id);
  std::vector<std::string> elections;
  for (const auto& [election, watched] : watched_) {
    if (!watched.armed) elections.push_back(election);
  }
  for (const auto& election : elections) armElectionWatch(election);
}

// --- Cleaner ----------------------------------------------------------------

void KeeperBackend::campaignCleaner() {
  if (!self_ || !usable().ok() || cleaner_term_ != 0) return;
  cleaner_term_ = -1;  // registering
  OwnerRecord owner{self_->node_id, "", kCleanerElection, {}};
  int64_t generation = generation_;
  registerCandidate(kCleanerElection, owner, "", 0, [this, generation](absl::StatusOr<CampaignResult> r) {
    if (generation != generation_) return;
    if (!r.ok()) {
      cleaner_term_ = 0;  // the next pass, session or step-down tries again
      spdlog::warn("{}: cannot stand in the {} election: {}", options_.kind, kCleanerElection, r.status().ToString());
      return;
    }
    cleaner_term_ = r->term;
  });
}

void KeeperBackend::scheduleCleaner() {
  executor_->postAt(executor_->now() + absl::ToChronoMilliseconds(options_.cleaner_interval), [this] {
    scheduleCleaner();
    if (cleaner_term_ == 0) campaignCleaner();  // its registration failed: stand again
    auto it = candidates_.find(cleaner_term_);
    if (usable().ok() && it != candidates_.end() && it->second.primary) clean();
  });
}

// One bounded pass: deletes empty persistent parents (lock buckets, waiter
// queues and their buckets, election parents, member buckets), at most
// cleaner_limit, and logs what it did when the last delete answers.
void KeeperBackend::clean() {
  struct Cycle {
    explicit Cycle(int64_t limit) : budget(limit), limit(limit) {}
    ~Cycle() {
      if (removed > 0) spdlog::info("cleaner: cycle removed {} of at most {} empty parents", removed, limit);
    }
    int64_t budget;
    const int64_t limit;
    int64_t removed = 0;
  };
  auto cycle = std::make_shared<Cycle>(options_.cleaner_limit);
  const int64_t generation = generation_;
  // Removes `dir` if it has no children; `then` runs on its children else.
  auto clean_dir = [this, cycle, generation](const std::string& dir, std::function<void(const std::string&)> then) {
    if (generation != generation_ || cycle->budget <= 0) return;
    zk_->children(dir, nullptr, [this, cycle, dir, then, generation](const Result& r) {
      if (r.code != Code::kOk || generation != generation_) return;
      if (r.children.empty()) {
        if (cycle->budget <= 0) return;
        --cycle->budget;
        // ZooKeeper refuses (not empty) if a child came meanwhile: nothing
        // live is ever lost.
        zk_->remove(dir, -1, [this, cycle, dir](const Result& rm) {
          if (rm.code != Code::kOk) return;
          ++cycle->removed;
          options_.metrics->cleaner_deletions.inc();
        });
        return;
      }
      if (then) {
        for (const auto& child : r.children) then(dir + "/" + child);
      }
    });
  };
  auto leaf = [clean_dir](const std::string& dir) { clean_dir(dir, nullptr); };
  auto bucket_of_queues = [clean_dir, leaf](const std::string& dir) { clean_dir(dir, leaf); };
  zk_->children(layout_.locks(), nullptr, [leaf, this](const Result& r) {
    for (const auto& bucket : r.children) leaf(layout_.locks() + "/" + bucket);
  });
  zk_->children(layout_.waiters(), nullptr, [bucket_of_queues, this](const Result& r) {
    for (const auto& bucket : r.children) bucket_of_queues(layout_.waiters() + "/" + bucket);
  });
  zk_->children(layout_.elections(), nullptr, [leaf, this](const Result& r) {
    for (const auto& election : r.children) leaf(layout_.elections() + "/" + election);
  });
  zk_->children(layout_.nodes(), nullptr, [leaf, this](const Result& r) {
    for (const auto& bucket : r.children) leaf(layout_.nodes() + "/" + bucket);
  });
}

// --- Orphans ----------------------------------------------------------------

void KeeperBackend::reconcileUncertain() {
  // Each entry is a node (a lock, a waiter, a candidate), or a queue or
  // election directory whose sequential child may be ours. Whatever this
  // session owns there that nobody claims goes.
  auto claimed = [this](const std::string& path, const Stat& stat) {
    // A lock's node by its czxid: the one a lost create made is not the one
    // held before it (which its watch will find gone).
    for (const auto& [name, held] : locks_) {
      if (held.path == path && held.token == stat.czxid) return true;
    }
    for (const auto& [id, waiter] : waiters_) {
      if (waiter.node == path) return true;
    }
    for (const auto& [term, held] : candidates_) {
      if (held.path == path) return true;
    }
    return false;
  };
  const int64_t generation = generation_;
  auto check = [this, claimed, generation](const std::string& path) {
    zk_->exists(path, nullptr, [this, path, claimed, generation](const Result& r) {
      if (generation != generation_) return;
      noteIfUncertain(r.code, path);  // lost again: next reconnect
      if (r.code == Code::kOk && r.stat.ephemeral_owner == zk_->sessionId() && !claimed(path, r.stat)) {
        spdlog::info("{}: deleting orphan node {} of this session", options_.kind, path);
        zk_->remove(path, r.stat.version, [this, path, generation](const Result& removed) {
          if (generation != generation_) return;
          noteIfUncertain(removed.code, path);  // lost: the next reconnect tries again
          if (removed.code == Code::kOk) options_.metrics->reconciler_deletions.inc();
        });
      }
    });
  };
  std::set<std::string> entries;
  entries.swap(uncertain_);
  for (const auto& path : entries) {
    const std::string base = baseOf(path);
    bool is_node = path.rfind(layout_.locks(), 0) == 0 || base.rfind(kWaiterPrefix, 0) == 0 ||
                   base.rfind(kCandidatePrefix, 0) == 0;
    if (is_node) {
      check(path);
      continue;
    }
    zk_->children(path, nullptr, [this, path, check, generation](const Result& r) {
      if (generation != generation_) return;
      noteIfUncertain(r.code, path);
      for (const auto& child : r.children) check(path + "/" + child);
    });
  }
}

}  // namespace coordd::backend::recipes
