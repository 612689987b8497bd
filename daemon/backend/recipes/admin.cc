// Cluster-wide views and admin actions, and the member registry.
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "backend/recipes/internal.h"
#include "spdlog/spdlog.h"

namespace coordd::backend::recipes {

void KeeperBackend::listLocks(Callback<std::vector<LockView>> done) {
  whenConnected(done, [this, done] {
    listBucketed(layout_.locks(), [this, done](Code rc, std::vector<std::string> paths) {
      if (rc != Code::kOk) return done(toStatus(rc, "locks"));
      getAll(paths, [done](Code rc, Results results) {
        if (rc != Code::kOk) return done(toStatus(rc, "locks"));
        std::vector<LockView> views;
        for (const auto& r : results) {
          if (r.code != Code::kOk) continue;
          DecodedNode node = decodeNode(r.data);
          views.push_back(
              LockView{node.name.empty() ? baseOf(r.path) : node.name, LockHolder{node.owner, r.stat.czxid}, {}});
        }
        done(views);
      });
    });
  });
}

void KeeperBackend::lockInfo(const std::string& name, Callback<LockView> done) {
  whenConnected(done, [this, name, done] {
    zk_->get(layout_.lock(name), [this, name, done](const Result& held) {
      if (held.code != Code::kOk && held.code != Code::kNoNode) return done(toStatus(held.code, "lock " + name));
      LockView view{name, std::nullopt, {}};
      if (held.code == Code::kOk) view.holder = LockHolder{decodeNode(held.data).owner, held.stat.czxid};
      const std::string queue = layout_.waiterQueue(name);
      zk_->children(queue, nullptr, [this, view, queue, done](const Result& q) mutable {
        if (failed(q.code)) return done(toStatus(q.code, "lock queue of " + view.name));
        std::vector<std::string> paths;
        for (const auto& child : sequenced(q.children, kWaiterPrefix)) paths.push_back(queue + "/" + child);
        getAll(paths, [view, done](Code rc, Results waiters) mutable {
          if (rc != Code::kOk) return done(toStatus(rc, "lock queue of " + view.name));
          for (const auto& w : waiters) {
            if (w.code == Code::kOk) view.waiters.push_back(decodeNode(w.data).owner);
          }
          done(view);
        });
      });
    });
  });
}

void KeeperBackend::forceUnlock(const std::string& name, Callback<LockHolder> done) {
  whenConnected(done, [this, name, done] {
    const std::string path = layout_.lock(name);
    zk_->get(path, [this, name, path, done](const Result& g) {
      if (g.code == Code::kNoNode) return done(absl::NotFoundError(absl::StrCat("lock '", name, "' is not held")));
      if (g.code != Code::kOk) return done(toStatus(g.code, "lock " + name));
      LockHolder holder{decodeNode(g.data).owner, g.stat.czxid};
      zk_->remove(path, g.stat.version, [name, holder, done](const Result& r) {
        if (r.code != Code::kOk) return done(toStatus(r.code, "lock " + name));
        done(holder);
      });
    });
  });
}

void KeeperBackend::electionView(const std::string& dir, Callback<ElectionView> done) {
  zk_->get(dir, [this, dir, done](const Result& d) {
    if (d.code != Code::kOk) return done(toStatus(d.code, "election"));
    std::string name = decodeNode(d.data).name;
    zk_->children(dir, nullptr, [this, dir, name, done](const Result& r) {
      if (failed(r.code)) return done(toStatus(r.code, "election " + name));
      std::vector<std::string> paths;
      for (const auto& child : sequenced(r.children, kCandidatePrefix)) paths.push_back(dir + "/" + child);
      getAll(paths, [name, done](Code rc, Results candidates) {
        if (rc != Code::kOk) return done(toStatus(rc, "election " + name));
        ElectionView view{name, {}};
        for (const auto& c : candidates) {
          if (c.code != Code::kOk) continue;
          DecodedNode node = decodeNode(c.data);
          view.candidates.push_back(Candidate{node.owner, node.value, c.stat.czxid});
        }
        done(view);
      });
    });
  });
}

void KeeperBackend::listElections(Callback<std::vector<ElectionView>> done) {
  whenConnected(done, [this, done] {
    zk_->children(layout_.elections(), nullptr, [this, done](const Result& r) {
      if (r.code == Code::kNoNode || (r.code == Code::kOk && r.children.empty()))
        return done(std::vector<ElectionView>());
      if (r.code != Code::kOk) return done(toStatus(r.code, "elections"));
      using Views = std::vector<ElectionView>;
      auto fan_in = std::make_shared<FanIn<Views, absl::Status>>(r.children.size(), [done](absl::Status s, Views v) {
        if (!s.ok()) return done(s);
        done(std::move(v));
      });
      for (const auto& child : r.children) {
        electionView(layout_.elections() + "/" + child, [fan_in](absl::StatusOr<ElectionView> view) {
          // An election gone meanwhile is not in the list.
          fan_in->answer(view.status(), [&](Views& views) {
            if (view.ok() && !view->candidates.empty()) views.push_back(std::move(*view));
          });
        });
      }
    });
  });
}

void KeeperBackend::electionInfo(const std::string& election, Callback<ElectionView> done) {
  whenConnected(done, [this, election, done] {
    electionView(layout_.election(election), [election, done](absl::StatusOr<ElectionView> view) {
      if (!view.ok() && absl::IsNotFound(view.status())) return done(ElectionView{election, {}});
      done(view);
    });
  });
}

void KeeperBackend::stepDown(const std::string& election, Callback<Candidate> done) {
  whenConnected(done, [this, election, done] {
    const std::string dir = layout_.election(election);
    zk_->children(dir, nullptr, [this, dir, election, done](const Result& r) {
      // A lost answer is not "no primary": the caller may retry.
      if (r.code != Code::kOk && r.code != Code::kNoNode) return done(toStatus(r.code, "election " + election));
      auto order = sequenced(r.children, kCandidatePrefix);
      if (r.code == Code::kNoNode || order.empty()) {
        return done(absl::NotFoundError(absl::StrCat("election '", election, "' has no primary")));
      }
      const std::string path = dir + "/" + order.front();
      zk_->get(path, [this, path, election, done](const Result& g) {
        if (g.code != Code::kOk) return done(toStatus(g.code, "election " + election));
        DecodedNode node = decodeNode(g.data);
        Candidate primary{node.owner, node.value, g.stat.czxid};
        zk_->remove(path, g.stat.version, [election, primary, done](const Result& rm) {
          if (rm.code != Code::kOk) return done(toStatus(rm.code, "election " + election));
          done(primary);
        });
      });
    });
  });
}

void KeeperBackend::registerMember(const Member& self) {
  executor_->post([this, self] {
    self_ = self;
    if (!usable().ok()) return;
    createMember();
    if (cleaner_term_ == 0) campaignCleaner();
  });
}

void KeeperBackend::createMember() {
  if (!self_) return;
  const std::string path = layout_.member(self_->node_id);
  int64_t generation = generation_;
  createWithParents(path, encodeMember(*self_), CreateMode::kEphemeral, [this, path, generation](const Result& r) {
    if (generation != generation_ || r.code == Code::kOk) return;
    if (r.code != Code::kNodeExists) {
      spdlog::warn("{}: cannot register this daemon: {}", options_.kind, codeName(r.code));
      return;
    }
    // The node of our previous session, not yet expired by the server:
    // register again once it goes.
    zk_->exists(
        path,
        [this, generation](WatchEvent type) {
          if (generation == generation_ && type == WatchEvent::kDeleted) createMember();
        },
        [this, generation](const Result& e) {
          if (generation == generation_ && e.code == Code::kNoNode) createMember();
        });
  });
}

void KeeperBackend::listMembers(Callback<std::vector<Member>> done) {
  whenConnected(done, [this, done] {
    listBucketed(layout_.nodes(), [this, done](Code rc, std::vector<std::string> paths) {
      if (rc != Code::kOk) return done(toStatus(rc, "nodes"));
      getAll(paths, [done](Code rc, Results results) {
        if (rc != Code::kOk) return done(toStatus(rc, "nodes"));
        std::vector<Member> members;
        for (const auto& r : results) {
          if (r.code == Code::kOk) members.push_back(decodeMember(r.data));
        }
        done(members);
      });
    });
  });
}
}  // namespace coordd::backend::recipes
