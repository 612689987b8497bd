#include "backend/memory/memory_store.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace coordd::backend::memory {

int64_t MemoryStore::openSession(SessionSink* sink) {
  std::lock_guard<std::mutex> lock(mu_);
  int64_t id = next_session_++;
  sessions_[id] = SessionState{sink, false};
  return id;
}

void MemoryStore::closeSession(int64_t session) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = sessions_.find(session);
  if (it == sessions_.end()) return;
  SessionSink* sink = it->second.sink;
  sessions_.erase(it);

  std::vector<std::string> to_serve;
  for (auto& [name, entry] : locks_) {
    for (auto w = entry.waiters.begin(); w != entry.waiters.end();) {
      if (w->session != session) {
        ++w;
        continue;
      }
      sink->post([done = std::move(w->done)] { done(absl::AbortedError("coordinator session ended")); });
      w = entry.waiters.erase(w);
    }
    if (entry.held && entry.held->session == session) entry.held.reset();
    to_serve.push_back(name);
  }
  for (const auto& name : to_serve) {
    serve(name);
    dropIfEmpty(name);
  }

  for (auto& [election, entry] : elections_) {
    entry.watchers.erase(session);
    for (size_t i = entry.candidates.size(); i-- > 0;) {
      if (entry.candidates[i].session == session) removeCandidate(election, i, false, "");
    }
  }
  std::vector<std::string> names;
  for (const auto& [election, entry] : elections_) names.push_back(election);
  for (const auto& election : names) dropElectionIfEmpty(election);
  for (auto it = members_.begin(); it != members_.end();) {
    it = it->second.second == session ? members_.erase(it) : std::next(it);
  }
}

void MemoryStore::setSuspended(int64_t session, bool suspended) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = sessions_.find(session);
  if (it == sessions_.end()) return;
  it->second.suspended = suspended;
  if (suspended) return;
  std::vector<std::string> names;
  for (const auto& [name, entry] : locks_) {
    if (!entry.held && !entry.waiters.empty() && entry.waiters.front().session == session) {
      names.push_back(name);
    }
  }
  for (const auto& name : names) serve(name);
}

absl::Status MemoryStore::usable(int64_t session) const {
  auto it = sessions_.find(session);
  if (it == sessions_.end()) return absl::AbortedError("coordinator session expired");
  if (it->second.suspended) return absl::UnavailableError("coordinator connection lost");
  return absl::OkStatus();
}

void MemoryStore::notify(int64_t session, std::function<void(Listener*)> fn) {
  auto it = sessions_.find(session);
  if (it == sessions_.end() || it->second.suspended) return;
  SessionSink* sink = it->second.sink;
  sink->post([sink, fn = std::move(fn)] { fn(sink->listener()); });
}

void MemoryStore::serve(const std::string& name) {
  auto it = locks_.find(name);
  if (it == locks_.end()) return;
  LockEntry& entry = it->second;
  if (entry.held || entry.waiters.empty()) return;
  auto session = sessions_.find(entry.waiters.front().session);
  if (session == sessions_.end() || session->second.suspended) return;
  Waiter waiter = std::move(entry.waiters.front());
  entry.waiters.pop_front();
  int64_t token = next_token_++;
  entry.held = Held{LockHolder{waiter.owner, token}, waiter.session};
  session->second.sink->post([done = std::move(waiter.done), token] { done(token); });
}

void MemoryStore::dropIfEmpty(const std::string& name) {
  auto it = locks_.find(name);
  if (it != locks_.end() && !it->second.held && it->second.waiters.empty()) locks_.erase(it);
}

absl::StatusOr<TryLockResult> MemoryStore::tryLock(int64_t session, const std::string& name, const OwnerRecord& owner) {
  std::lock_guard<std::mutex> lock(mu_);
  if (auto status = usable(session); !status.ok()) return status;
  LockEntry& entry = locks_[name];
  TryLockResult result;
  if (entry.held) {
    result.holder = entry.held->holder;
    return result;
  }
  result.acquired = true;
  result.token = next_token_++;
  entry.held = Held{LockHolder{owner, result.token}, session};
  return result;
}

absl::Status MemoryStore::lock(int64_t session, const std::string& name, const OwnerRecord& owner, int64_t waiter_id,
                               Callback<int64_t> done) {
  std::lock_guard<std::mutex> lock(mu_);
  if (auto status = usable(session); !status.ok()) return status;
  locks_[name].waiters.push_back(Waiter{owner, session, waiter_id, std::move(done)});
  serve(name);
  return absl::OkStatus();
}

absl::Status MemoryStore::cancelLock(int64_t session, const std::string& name, int64_t waiter_id) {
  std::lock_guard<std::mutex> lock(mu_);
  if (auto status = usable(session); !status.ok()) return status;
  auto it = locks_.find(name);
  if (it == locks_.end()) return absl::NotFoundError("no such waiter");
  auto& waiters = it->second.waiters;
  auto w = std::find_if(waiters.begin(), waiters.end(), [&](const Waiter& waiter) {
    return waiter.session == session && waiter.waiter_id == waiter_id;
  });
  if (w == waiters.end()) return absl::NotFoundError("no such waiter");
  sessions_[session].sink->post([done = std::move(w->done)] { done(absl::CancelledError("wait cancelled")); });
  waiters.erase(w);
  serve(name);
  dropIfEmpty(name);
  return absl::OkStatus();
}

absl::Status MemoryStore::unlock(int64_t session, const std::string& name, int64_t token) {
  std::lock_guard<std::mutex> lock(mu_);
  if (auto status = usable(session); !status.ok()) return status;
  auto it = locks_.find(name);
  if (it == locks_.end() || !it->second.held || it->second.held->session != session ||
      it->second.held->holder.token != token) {
    return absl::NotFoundError(absl::StrCat("lock '", name, "' is not held with token ", token));
  }
  it->second.held.reset();
  serve(name);
  dropIfEmpty(name);
  return absl::OkStatus();
}

absl::StatusOr<bool> MemoryStore::verifyLock(int64_t session, const std::string& name, int64_t token) {
  std::lock_guard<std::mutex> lock(mu_);
  if (auto status = usable(session); !status.ok()) return status;
  auto it = locks_.find(name);
  return it != locks_.end() && it->second.held && it->second.held->session == session &&
         it->second.held->holder.token == token;
}

absl::StatusOr<Backend::CampaignResult> MemoryStore::campaign(int64_t session, const std::string& election,
                                                              const OwnerRecord& owner, const std::string& value) {
  std::lock_guard<std::mutex> lock(mu_);
  if (auto status = usable(session); !status.ok()) return status;
  ElectionEntry& entry = elections_[election];
  int64_t previous = entry.candidates.empty() ? 0 : entry.candidates.front().candidate.term;
  int64_t term = next_token_++;
  entry.candidates.push_back(CandidateEntry{Candidate{owner, value, term}, session});
  if (previous == 0) announceLeader(election, previous);
  return Backend::CampaignResult{term, entry.candidates.front().candidate.term == term};
}

absl::Status MemoryStore::resign(int64_t session, const std::string& election, int64_t term) {
  std::lock_guard<std::mutex> lock(mu_);
  if (auto status = usable(session); !status.ok()) return status;
  auto it = elections_.find(election);
  if (it != elections_.end()) {
    auto& candidates = it->second.candidates;
    for (size_t i = 0; i < candidates.size(); ++i) {
      if (candidates[i].session == session && candidates[i].candidate.term == term) {
        removeCandidate(election, i, false, "");
        dropElectionIfEmpty(election);
        return absl::OkStatus();
      }
    }
  }
  return absl::NotFoundError(absl::StrCat("no candidacy in '", election, "' with term ", term));
}

void MemoryStore::removeCandidate(const std::string& election, size_t index, bool tell_owner,
                                  const std::string& reason) {
  ElectionEntry& entry = elections_[election];
  int64_t previous = entry.candidates.front().candidate.term;
  CandidateEntry removed = entry.candidates[index];
  entry.candidates.erase(entry.candidates.begin() + static_cast<std::ptrdiff_t>(index));
  if (tell_owner) {
    notify(removed.session, [election, term = removed.candidate.term, reason](Listener* listener) {
      listener->onCandidacyChanged(election, term, false, true, reason);
    });
  }
  announceLeader(election, previous);
}

void MemoryStore::dropElectionIfEmpty(const std::string& election) {
  auto it = elections_.find(election);
  if (it != elections_.end() && it->second.candidates.empty() && it->second.watchers.empty()) {
    elections_.erase(it);
  }
}

void MemoryStore::announceLeader(const std::string& election, int64_t previous_term) {
  const ElectionEntry& entry = elections_[election];
  std::optional<Candidate> leader;
  if (!entry.candidates.empty()) leader = entry.candidates.front().candidate;
  int64_t term = leader ? leader->term : 0;
  if (term == previous_term) return;
  if (leader && previous_term != 0) {
    notify(entry.candidates.front().session,
           [election, term](Listener* listener) { listener->onCandidacyChanged(election, term, true, false, ""); });
  }
  for (int64_t watcher : entry.watchers) {
    notify(watcher, [election, leader](Listener* listener) { listener->onLeaderChanged(election, leader); });
  }
}

absl::StatusOr<std::optional<bool>> MemoryStore::verifyCandidacy(int64_t session, const std::string& election,
                                                                 int64_t term) {
  std::lock_guard<std::mutex> lock(mu_);
  if (auto status = usable(session); !status.ok()) return status;
  auto it = elections_.find(election);
  if (it == elections_.end()) return std::optional<bool>();
  const auto& candidates = it->second.candidates;
  for (size_t i = 0; i < candidates.size(); ++i) {
    if (candidates[i].session == session && candidates[i].candidate.term == term) {
      return std::optional<bool>(i == 0);
    }
  }
  return std::optional<bool>();
}

absl::StatusOr<std::optional<Candidate>> MemoryStore::leader(int64_t session, const std::string& election) {
  std::lock_guard<std::mutex> lock(mu_);
  if (auto status = usable(session); !status.ok()) return status;
  auto it = elections_.find(election);
  if (it == elections_.end() || it->second.candidates.empty()) return std::optional<Candidate>();
  return std::optional<Candidate>(it->second.candidates.front().candidate);
}

void MemoryStore::watchElection(int64_t session, const std::string& election) {
  std::lock_guard<std::mutex> lock(mu_);
  elections_[election].watchers.insert(session);
}

void MemoryStore::unwatchElection(int64_t session, const std::string& election) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = elections_.find(election);
  if (it == elections_.end()) return;
  it->second.watchers.erase(session);
  dropElectionIfEmpty(election);
}

LockView MemoryStore::viewOf(const std::string& name, const LockEntry& entry) const {
  LockView view;
  view.name = name;
  if (entry.held) view.holder = entry.held->holder;
  for (const auto& waiter : entry.waiters) view.waiters.push_back(waiter.owner);
  return view;
}

absl::StatusOr<std::vector<LockView>> MemoryStore::listLocks(int64_t session) {
  std::lock_guard<std::mutex> lock(mu_);
  if (auto status = usable(session); !status.ok()) return status;
  std::vector<LockView> views;
  for (const auto& [name, entry] : locks_) views.push_back(viewOf(name, entry));
  return views;
}

absl::StatusOr<LockView> MemoryStore::lockInfo(int64_t session, const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  if (auto status = usable(session); !status.ok()) return status;
  auto it = locks_.find(name);
  if (it == locks_.end()) return LockView{name, std::nullopt, {}};
  return viewOf(name, it->second);
}

absl::StatusOr<LockHolder> MemoryStore::forceUnlock(int64_t session, const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  if (auto status = usable(session); !status.ok()) return status;
  auto it = locks_.find(name);
  if (it == locks_.end() || !it->second.held) {
    return absl::NotFoundError(absl::StrCat("lock '", name, "' is not held"));
  }
  Held held = *it->second.held;
  it->second.held.reset();
  notify(held.session, [name, token = held.holder.token](Listener* listener) {
    listener->onLockLost(name, token, "released by an admin");
  });
  serve(name);
  dropIfEmpty(name);
  return held.holder;
}

absl::StatusOr<std::vector<ElectionView>> MemoryStore::listElections(int64_t session) {
  std::lock_guard<std::mutex> lock(mu_);
  if (auto status = usable(session); !status.ok()) return status;
  std::vector<ElectionView> views;
  for (const auto& [name, entry] : elections_) {
    if (entry.candidates.empty()) continue;
    ElectionView view{name, {}};
    for (const auto& c : entry.candidates) view.candidates.push_back(c.candidate);
    views.push_back(std::move(view));
  }
  return views;
}

absl::StatusOr<ElectionView> MemoryStore::electionInfo(int64_t session, const std::string& election) {
  std::lock_guard<std::mutex> lock(mu_);
  if (auto status = usable(session); !status.ok()) return status;
  ElectionView view{election, {}};
  auto it = elections_.find(election);
  if (it != elections_.end()) {
    for (const auto& c : it->second.candidates) view.candidates.push_back(c.candidate);
  }
  return view;
}

absl::StatusOr<Candidate> MemoryStore::stepDown(int64_t session, const std::string& election) {
  std::lock_guard<std::mutex> lock(mu_);
  if (auto status = usable(session); !status.ok()) return status;
  auto it = elections_.find(election);
  if (it == elections_.end() || it->second.candidates.empty()) {
    return absl::NotFoundError(absl::StrCat("election '", election, "' has no primary"));
  }
  Candidate primary = it->second.candidates.front().candidate;
  removeCandidate(election, 0, true, "stepped down by an admin");
  dropElectionIfEmpty(election);
  return primary;
}

void MemoryStore::registerMember(int64_t session, const Member& member) {
  std::lock_guard<std::mutex> lock(mu_);
  members_[member.node_id] = {member, session};
}

absl::StatusOr<std::vector<Member>> MemoryStore::listMembers(int64_t session) {
  std::lock_guard<std::mutex> lock(mu_);
  if (auto status = usable(session); !status.ok()) return status;
  std::vector<Member> members;
  for (const auto& [id, member] : members_) members.push_back(member.first);
  return members;
}

}  // namespace coordd::backend::memory
