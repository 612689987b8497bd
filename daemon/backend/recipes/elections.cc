// Elections: candidates, verification, observed elections.
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "backend/recipes/internal.h"
#include "coordd/check.h"
#include "spdlog/spdlog.h"

namespace coordd::backend::recipes {

void KeeperBackend::campaign(const std::string& election, const OwnerRecord& owner, const std::string& value,
                             Callback<CampaignResult> done) {
  whenConnected(done, [this, election, owner, value, done] { registerCandidate(election, owner, value, 0, done); });
}

void KeeperBackend::registerCandidate(const std::string& election, const OwnerRecord& owner, const std::string& value,
                                      int attempt, Callback<CampaignResult> done) {
  const std::string dir = layout_.election(election);
  int64_t generation = generation_;
  auto create_candidate = [this, election, owner, value, attempt, done, dir, generation]() {
    zk_->create(dir + "/" + kCandidatePrefix, encodeCandidate(owner, value), CreateMode::kEphemeralSequential,
                [this, election, owner, value, attempt, done, dir, generation](const Result& r) {
                  if (generation != generation_) return done(expired());
                  if (r.code == Code::kNoNode && attempt < 3) {
                    // The cleaner removed the empty parent meanwhile.
                    return registerCandidate(election, owner, value, attempt + 1, done);
                  }
                  if (r.code != Code::kOk) {
                    noteIfUncertain(r.code, dir);
                    return done(toStatus(r.code, "election " + election));
                  }
                  candidates_[r.stat.czxid] = Held{election, r.path, false};
                  watchOwnCandidate(r.stat.czxid);
                  evaluateCandidate(r.stat.czxid, done, true);
                });
  };
  // The election's parent: a container, which ZooKeeper removes once empty;
  // a persistent node where the server has no containers (the cleaner's job).
  auto create_parent = [this, dir, election, create_candidate, done](CreateMode flags, auto& self) -> void {
    zk_->create(
        dir, encodeElection(election), flags,
        [this, dir, election, create_candidate, done, flags, self](const Result& r) {
          if (r.code == Code::kOk || r.code == Code::kNodeExists) return create_candidate();
          if ((r.code == Code::kUnimplemented || r.code == Code::kBadArguments) && flags == CreateMode::kContainer) {
            return self(CreateMode::kPersistent, self);
          }
          if (r.code != Code::kNoNode) return done(toStatus(r.code, "election " + election));
          ensurePath(layout_.elections(), [create_candidate, done, election, flags, self](Code rc) {
            if (rc != Code::kOk) return done(toStatus(rc, "elections"));
            self(flags, self);
          });
        });
  };
  create_parent(CreateMode::kContainer, create_parent);
}

void KeeperBackend::evaluateCandidate(int64_t term, Callback<CampaignResult> first, bool registration) {
  auto it = candidates_.find(term);
  if (it == candidates_.end() || !zk_) {
    // Resigned, or its node deleted: the session lives on, it may retry.
    if (first) first(absl::UnavailableError("candidacy withdrawn meanwhile; retry"));
    return;
  }
  const std::string dir = parentOf(it->second.path);
  const int64_t generation = generation_;
  auto current = newRound(candidates_, term, &Held::eval_round);
  zk_->children(dir, nullptr, [this, term, first, registration, dir, current, generation](const Result& r) {
    Held* held = current();
    if (held == nullptr) {
      if (!first) return;  // a newer evaluation took over
      if (generation != generation_) return first(expired());
      auto it = candidates_.find(term);
      if (it == candidates_.end()) return first(absl::UnavailableError("candidacy withdrawn meanwhile; retry"));
      // Superseded: the newest evaluation answers this caller too. Issuing
      // another would supersede that one in turn, and two callers would
      // take turns for ever (two reconnects within one round trip).
      it->second.awaiting.push_back(Caller{first, registration});
      return;
    }
    std::vector<Caller> callers = std::move(held->awaiting);
    held->awaiting.clear();
    if (first) callers.push_back(Caller{first, registration});
    auto order = sequenced(r.children, kCandidatePrefix);
    auto pos = std::find(order.begin(), order.end(), baseOf(held->path));
    if (r.code != Code::kOk || pos == order.end()) {
      const absl::Status why = r.code == Code::kOk
                                   ? absl::UnavailableError("the candidate's node was deleted meanwhile; retry")
                                   : toStatus(r.code, "election");
      const bool registering =
          std::any_of(callers.begin(), callers.end(), [](const Caller& c) { return c.registration; });
      if (registering) {
        // A registration whose standing is unknown is not handed out: its
        // node goes (now, or once reconciled) and the caller may retry.
        // Never so for a candidacy a client was told of: it may be acting
        // on it, within its lease. A verification that fails is answered
        // with the failure; the next reconnect verifies again, and
        // watchOwnCandidate reports a removal.
        std::string path = held->path;
        candidates_.erase(term);
        if (r.code == Code::kOk) {
          removeOwn(path);
        } else {
          uncertain_.insert(path);
        }
      }
      for (auto& caller : callers) caller.done(why);
      return;
    }
    bool was_primary = held->primary;
    held->primary = pos == order.begin();
    const std::string election = held->election;
    const bool primary = held->primary;
    if (!callers.empty()) {
      for (auto& caller : callers) caller.done(Backend::CampaignResult{term, primary});
    } else if (primary && !was_primary) {
      listener_->onCandidacyChanged(election, term, true, false, "");
    }
    held = current();  // a caller may have changed it
    if (held == nullptr) return;
    if (held->primary) {
      held->pred_armed = false;
      held->predecessor.clear();
      return;
    }
    // Watch only the predecessor, and only once: a verification that finds
    // the same one keeps the watch already set.
    const std::string predecessor = dir + "/" + *std::prev(pos);
    if (held->pred_armed && held->predecessor == predecessor) return;
    held->predecessor = predecessor;
    held->pred_armed = false;
    auto watching = newRound(candidates_, term, &Held::pred_round);
    zk_->exists(
        predecessor,
        [this, term, watching](WatchEvent) {
          if (Held* held = watching()) {
            held->pred_armed = false;
            evaluateCandidate(term, nullptr);
          }
        },
        [this, term, watching](const Result& e) {
          Held* held = watching();
          if (held == nullptr) return;
          if (e.code == Code::kNoNode) return evaluateCandidate(term, nullptr);
          held->pred_armed = e.code == Code::kOk;
        });
  });
}

void KeeperBackend::forgetCandidate(int64_t term, const absl::Status& why) {
  auto it = candidates_.find(term);
  if (it == candidates_.end()) return;
  std::vector<Caller> callers = std::move(it->second.awaiting);
  candidates_.erase(it);
  for (auto& caller : callers) caller.done(why);
}

void KeeperBackend::watchOwnCandidate(int64_t term) {
  auto it = candidates_.find(term);
  if (it == candidates_.end()) return;
  it->second.armed = false;
  auto current = newRound(candidates_, term, &Held::round);
  auto removed = [this, term]() {
    const std::string election = mustFind(candidates_, term).election;
    forgetCandidate(term, absl::UnavailableError("the candidate's node was deleted; retry"));
    if (term == cleaner_term_) {
      cleaner_term_ = 0;
      return campaignCleaner();  // stepped down: stand again, behind the others
    }
    listener_->onCandidacyChanged(election, term, false, true,
                                  absl::StrCat("candidate node deleted in ", options_.name, " (step-down)"));
  };
  zk_->exists(
      it->second.path,
      [this, term, current, removed](WatchEvent type) {
        if (current() == nullptr) return;
        if (type == WatchEvent::kDeleted) return removed();
        watchOwnCandidate(term);
      },
      [this, term, current, removed](const Result& r) {
        Held* held = current();
        if (held == nullptr) return;
        // Gone before the watch was set, or deleted and its path taken anew
        // by someone else (ABA): the watch would sit on another's node.
        if (r.code == Code::kNoNode) return removed();
        if (r.code == Code::kOk && !isOurs(r.stat, term)) return removed();
        held->armed = r.code == Code::kOk;  // other failures: re-armed on reconnect
      });
}

void KeeperBackend::resign(const std::string& election, int64_t term, Done done) {
  whenConnected(done, [this, election, term, done] {
    auto it = candidates_.find(term);
    if (it == candidates_.end()) {
      return done(absl::NotFoundError(absl::StrCat("no candidacy in '", election, "' with term ", term)));
    }
    std::string path = it->second.path;
    forgetCandidate(term, absl::FailedPreconditionError("candidacy withdrawn"));
    // Forgotten here first; a delete whose answer is lost is reconciled.
    owned(path, term, [this, path, election, done](Code rc, bool mine, const Stat& stat) {
      if (rc != Code::kOk && rc != Code::kNoNode) {
        uncertain_.insert(path);
        return done(toStatus(rc, "election " + election));
      }
      if (!mine) return done(absl::NotFoundError("candidate node gone"));
      zk_->remove(path, stat.version, [this, path, election, done](const Result& r) {
        noteIfUncertain(r.code, path);
        done(r.code == Code::kOk ? absl::OkStatus() : toStatus(r.code, "election " + election));
      });
    });
  });
}

void KeeperBackend::verifyCandidacy(const std::string& election, int64_t term, Callback<std::optional<bool>> done) {
  whenConnected(done, [this, term, done] {
    auto it = candidates_.find(term);
    if (it == candidates_.end()) return done(std::optional<bool>());
    owned(it->second.path, term, [this, term, done](Code rc, bool mine, const Stat&) {
      if (rc != Code::kOk && rc != Code::kNoNode) return done(toStatus(rc, "candidate"));
      if (!mine) {
        forgetCandidate(term, absl::UnavailableError("the candidate's node was deleted; retry"));
        return done(std::optional<bool>());
      }
      evaluateCandidate(term, [done](absl::StatusOr<CampaignResult> r) {
        if (!r.ok()) return done(r.status());
        done(std::optional<bool>(r->primary));
      });
    });
  });
}

void KeeperBackend::currentLeader(const std::string& election, Callback<std::optional<Candidate>> done) {
  const std::string dir = layout_.election(election);
  zk_->children(dir, nullptr, [this, dir, election, done](const Result& r) {
    if (r.code == Code::kNoNode) return done(std::optional<Candidate>());
    if (r.code != Code::kOk) return done(toStatus(r.code, "election " + election));
    auto order = sequenced(r.children, kCandidatePrefix);
    if (order.empty()) return done(std::optional<Candidate>());
    zk_->get(dir + "/" + order.front(), [this, election, done](const Result& g) {
      if (g.code == Code::kNoNode) return currentLeader(election, done);  // changed meanwhile
      if (g.code != Code::kOk) return done(toStatus(g.code, "election " + election));
      DecodedNode node = decodeNode(g.data);
      done(std::optional<Candidate>(Candidate{node.owner, node.value, g.stat.czxid}));
    });
  });
}

void KeeperBackend::leader(const std::string& election, Callback<std::optional<Candidate>> done) {
  whenConnected(done, [this, election, done] { currentLeader(election, done); });
}

void KeeperBackend::watchElection(const std::string& election) {
  executor_->post([this, election] {
    watched_.emplace(election, Watched{});
    if (usable().ok()) armElectionWatch(election);
  });
}

void KeeperBackend::unwatchElection(const std::string& election) {
  executor_->post([this, election] { watched_.erase(election); });
}

void KeeperBackend::armElectionWatch(const std::string& election) {
  auto it = watched_.find(election);
  if (it == watched_.end() || !zk_) return;
  const std::string dir = layout_.election(election);
  it->second.armed = false;
  auto round = newRound(watched_, election, &Watched::round);
  auto current = [round] { return round() != nullptr; };
  auto rearm = [this, election, current](WatchEvent) {
    if (current()) armElectionWatch(election);
  };
  auto armed = [this, election, current] {
    if (current()) watched_[election].armed = true;
  };
  zk_->children(dir, rearm, [this, dir, election, rearm, current, armed](const Result& r) {
    if (!current()) return;
    if (r.code == Code::kOk) armed();
    if (r.code == Code::kNoNode) {
      // Learn when it appears; if it just did, watch its children.
      zk_->exists(dir, rearm, [rearm, armed](const Result& e) {
        if (e.code == Code::kOk) rearm(WatchEvent::kCreated);
        if (e.code == Code::kNoNode) armed();
      });
    }
    publishLeader(election);
  });
}

void KeeperBackend::publishLeader(const std::string& election) {
  currentLeader(election, [this, election](absl::StatusOr<std::optional<Candidate>> leader) {
    auto it = watched_.find(election);
    if (!leader.ok() || it == watched_.end()) return;
    int64_t term = leader->has_value() ? (*leader)->term : 0;
    if (it->second.leader_term == term) return;
    it->second.leader_term = term;
    listener_->onLeaderChanged(election, *leader);
  });
}
}  // namespace coordd::backend::recipes
