// Core: candidacies of client sessions, and the re-verification of every
// hold after a reconnect.
#include "absl/strings/str_cat.h"
#include "coordd/check.h"
#include "core/core.h"
#include "core/status_map.h"
#include "core/validation.h"
#include "spdlog/spdlog.h"

namespace coordd::core {
namespace {

// How long a hold whose verification failed waits for the next try, at
// first and at most.
constexpr auto kReverifyDelay = std::chrono::milliseconds(200);
constexpr auto kMaxReverifyDelay = std::chrono::seconds(5);

}  // namespace

ElectionStatus Core::statusOf(const Candidacy& candidacy) const {
  const int64_t id = candidacy.campaign_call;
  if (candidacy.terminated) return ElectionStatus{CandidateStatus::kTerminated, 0, candidacy.reason, id};
  if (candidacy.registering) return ElectionStatus{CandidateStatus::kSecondary, 0, "", id};
  int64_t term = candidacy.primary ? candidacy.term : 0;
  if (candidacy.suspended || !linkSure()) {
    return ElectionStatus{CandidateStatus::kSuspended, term, "coordinator link in doubt", id};
  }
  return ElectionStatus{candidacy.primary ? CandidateStatus::kPrimary : CandidateStatus::kSecondary, term, "", id};
}

void Core::sendElection(Session& session, const std::string& election, const Candidacy& candidacy) {
  ElectionStatus status = statusOf(candidacy);
  spdlog::info("election {}: election={:?} owner={:?} session={} term={} reason={:?}",
               candidateStatusName(status.status), election, session.owner, session.public_id, candidacy.term,
               status.reason);
  Event event;
  event.kind = Event::Kind::kElection;
  event.name = election;
  event.status = status.status;
  event.token = status.term;
  event.candidacy = status.candidacy;
  event.reason = status.reason;
  send(session, std::move(event));
}

int64_t Core::campaign(const std::string& session_id, const std::string& election, const std::string& value,
                       bool rejoin, Reply<ElectionStatus> reply) {
  absl::Status refused = validateName("election", election);
  if (refused.ok()) refused = validateValue("value", value);
  if (refused.ok()) {
    std::lock_guard<std::mutex> lock(mu_);
    auto session = admitNewHold(session_id);
    if (!session.ok()) {
      refused = session.status();
    } else {
      auto& candidacies = (*session)->candidacies;
      auto existing = candidacies.find(election);
      bool replaceable = existing != candidacies.end() && existing->second.terminated && !existing->second.rejoin;
      if (existing != candidacies.end() && !replaceable) {
        refused =
            absl::AlreadyExistsError(absl::StrCat("election: this session is already a candidate in '", election, "'"));
      } else if (auto admit = replaceable ? absl::OkStatus() : admitHold(**session); !admit.ok()) {
        refused = admit;
      } else {
        Candidacy& candidacy = candidacies[election];
        candidacy = Candidacy{};
        candidacy.value = value;
        candidacy.rejoin = rejoin;
        candidacy.campaign_call = next_id_++;
        calls_[candidacy.campaign_call] = Call{};
        registerCandidacy(session_id, election, std::move(reply));
        return candidacy.campaign_call;
      }
    }
  }
  reply(refused);
  return 0;
}

void Core::registerCandidacy(const std::string& session_id, const std::string& election, Reply<ElectionStatus> reply) {
  Session& session = mustFind(sessions_.live, session_id);
  Candidacy& candidacy = mustFind(session.candidacies, election);
  candidacy.id = next_id_++;
  candidacy.registering = true;
  candidacy.verifying = false;  // a read of the old registration answers nothing now
  int64_t id = candidacy.id;
  int64_t epoch = link_.epoch;
  const int64_t call_id = reply ? candidacy.campaign_call : 0;
  backend_.campaign(
      election, ownerOf(session), candidacy.value,
      [this, session_id, election, id, call_id, epoch, reply](absl::StatusOr<backend::Backend::CampaignResult> result) {
        Deferred deferred;
        {
          std::lock_guard<std::mutex> lock(mu_);
          Session* session = nullptr;
          Candidacy* candidacy = nullptr;
          if (auto s = sessions_.live.find(session_id); s != sessions_.live.end()) {
            session = &s->second;
            auto c = session->candidacies.find(election);
            if (c != session->candidacies.end() && c->second.id == id) candidacy = &c->second;
          }
          // A Campaign's own registration (not a rejoin) whose caller gave up.
          auto call = reply ? calls_.find(call_id) : calls_.end();
          const bool cancelled = reply && (call == calls_.end() || call->second.cancelled);
          absl::Status failed = result.status();
          if (result.ok() && (candidacy == nullptr || epoch != link_.epoch || cancelled)) {
            // Resigned, session ended, coordinator session lost or caller
            // gone meanwhile.
            deleteCandidate(election, result->term, nullptr);  // checks term and session itself
            failed = candidacy == nullptr ? absl::FailedPreconditionError("the candidacy was withdrawn meanwhile")
                     : cancelled          ? absl::CancelledError("the caller gave up")
                                          : absl::UnavailableError("coordinator session lost while campaigning");
          }
          if (call != calls_.end()) {
            if (failed.ok()) {
              call->second = Call{false, true, true, session_id, election, call_id};
            } else {
              calls_.erase(call);
            }
          }
          if (candidacy != nullptr) {
            candidacy->registering = false;
            if (!failed.ok() && reply) {
              session->candidacies.erase(election);
            } else if (!failed.ok()) {
              // A rejoin that failed: stays TERMINATED, the sweeper tries again.
              spdlog::warn("rejoin of election {:?} for session {} failed: {}", election, session->public_id,
                           failed.ToString());
            } else {
              candidacy->terminated = false;
              candidacy->reason.clear();
              candidacy->term = result->term;
              candidacy->primary = result->primary;
              // Registered while the link dropped: in doubt until re-verified.
              candidacy->suspended = link_.state != backend::LinkState::kConnected;
              elections_.candidates[{election, result->term}] = session_id;
              sendElection(*session, election, *candidacy);
            }
          }
          if (reply) {
            if (failed.ok()) {
              deferred.push_back([reply, status = statusOf(*candidacy)] { reply(status); });
            } else {
              deferred.push_back([reply, status = clientStatus(failed)] { reply(status); });
            }
          }
        }
        for (auto& fn : deferred) fn();
      });
}

void Core::withdrawCandidacy(const std::string& session_id, const std::string& election, int64_t campaign_call,
                             const std::string& reason) {
  auto session = sessions_.live.find(session_id);
  if (session == sessions_.live.end()) return;
  auto it = session->second.candidacies.find(election);
  if (it == session->second.candidacies.end() || it->second.campaign_call != campaign_call) return;
  // Whatever became of it since the grant: lost and waiting to rejoin
  // (terminated), rejoining (its registration, finding no candidacy, deletes
  // its node), or registered again.
  const Candidacy candidacy = it->second;
  if (!candidacy.terminated) terminateCandidacy(session->second, election, reason);  // tells the session
  session->second.candidacies.erase(election);
  if (!candidacy.terminated && !candidacy.registering) deleteCandidate(election, candidacy.term, nullptr);
}

void Core::terminateCandidacy(Session& session, const std::string& election, const std::string& reason) {
  Candidacy& candidacy = mustFind(session.candidacies, election);
  elections_.candidates.erase({election, candidacy.term});
  candidacy.terminated = true;
  candidacy.primary = false;
  candidacy.suspended = false;
  candidacy.reason = reason;
  sendElection(session, election, candidacy);
}

absl::StatusOr<ElectionStatus> Core::status(const std::string& session_id, const std::string& election) {
  if (auto status = validateName("election", election); !status.ok()) return status;
  std::lock_guard<std::mutex> lock(mu_);
  auto session = findSession(session_id);
  if (!session.ok()) return session.status();
  auto it = (*session)->candidacies.find(election);
  if (it == (*session)->candidacies.end()) return ElectionStatus{CandidateStatus::kNotCandidate, 0, ""};
  return statusOf(it->second);
}

void Core::resign(const std::string& session_id, const std::string& election, StatusReply reply) {
  absl::Status refused = validateName("election", election);
  if (refused.ok()) {
    std::lock_guard<std::mutex> lock(mu_);
    auto session = findSession(session_id);
    if (!session.ok()) {
      refused = session.status();
    } else {
      auto it = (*session)->candidacies.find(election);
      if (it == (*session)->candidacies.end()) {
        refused = absl::NotFoundError(absl::StrCat("election: this session is not a candidate in '", election, "'"));
      } else {
        Candidacy candidacy = it->second;
        (*session)->candidacies.erase(it);
        spdlog::info("election RESIGNED: election={:?} owner={:?} session={} term={}", election, (*session)->owner,
                     (*session)->public_id, candidacy.term);
        if (!candidacy.registering && !candidacy.terminated) {
          elections_.candidates.erase({election, candidacy.term});
          deleteCandidate(election, candidacy.term, [reply] { reply(absl::OkStatus()); });
          return;
        }
        // Nothing in the coordinator, or a registration in flight that will
        // find no candidacy and delete its node.
      }
    }
  }
  reply(refused);
}

void Core::onCandidacyChanged(const std::string& election, int64_t term, bool primary, bool removed,
                              const std::string& reason) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = elections_.candidates.find({election, term});
  if (it == elections_.candidates.end()) return;
  auto session = sessions_.live.find(it->second);
  if (session == sessions_.live.end()) return;
  if (removed) {
    terminateCandidacy(session->second, election, reason);
    return;
  }
  Candidacy& candidacy = mustFind(session->second.candidacies, election);
  candidacy.primary = primary;
  sendElection(session->second, election, candidacy);
}

void Core::verifyHolds(bool after_reconnect) {
  link_.reverify_at.reset();
  if (after_reconnect) link_.reverify_failures = 0;
  // A retry skips what is verified already or still being verified.
  const auto skip = [after_reconnect](bool suspended, bool verifying) {
    return !after_reconnect && (!suspended || verifying);
  };
  for (auto& [id, session] : sessions_.live) {
    for (auto& [name, held] : session.locks) {
      if (skip(held.suspended, held.verifying)) continue;
      held.verifying = true;
      backend_.verifyLock(name, held.token,
                          [this, session_id = id, name = name, token = held.token](absl::StatusOr<bool> holds) {
                            std::lock_guard<std::mutex> lock(mu_);
                            auto s = sessions_.live.find(session_id);
                            if (s == sessions_.live.end()) return;
                            auto l = s->second.locks.find(name);
                            if (l == s->second.locks.end() || l->second.token != token) return;
                            l->second.verifying = false;
                            if (!l->second.suspended) return;
                            if (!holds.ok()) return verifyAgainLater();  // still in doubt
                            if (*holds) {
                              l->second.suspended = false;
                              sendLock(s->second, name, LockState::kRestored, token, "");
                            } else {
                              s->second.locks.erase(l);
                              locks_.holders.erase({name, token});
                              countLost("node_gone_after_reconnect");
                              sendLock(s->second, name, LockState::kLost, token, "lock node gone after reconnect");
                            }
                          });
    }
    for (auto& [election, candidacy] : session.candidacies) {
      if (candidacy.registering || candidacy.terminated || skip(candidacy.suspended, candidacy.verifying)) continue;
      candidacy.verifying = true;
      backend_.verifyCandidacy(
          election, candidacy.term,
          [this, session_id = id, election = election, cid = candidacy.id](absl::StatusOr<std::optional<bool>> r) {
            std::lock_guard<std::mutex> lock(mu_);
            auto s = sessions_.live.find(session_id);
            if (s == sessions_.live.end()) return;
            auto c = s->second.candidacies.find(election);
            if (c == s->second.candidacies.end() || c->second.id != cid || c->second.terminated) return;
            c->second.verifying = false;
            if (!r.ok()) {
              if (c->second.suspended) verifyAgainLater();
              return;
            }
            if (!r->has_value()) {
              terminateCandidacy(s->second, election, "candidacy gone after reconnect");
              return;
            }
            c->second.suspended = false;
            c->second.primary = **r;
            sendElection(s->second, election, c->second);
          });
    }
  }
  for (auto& [waiter_id, pending] : locks_.waiting) {
    if (!pending.granted || skip(true, pending.verifying)) continue;
    pending.verifying = true;
    backend_.verifyLock(pending.name, *pending.granted,
                        [this, waiter_id = waiter_id, token = *pending.granted](absl::StatusOr<bool> holds) {
                          onGrantVerified(waiter_id, token, std::move(holds));
                        });
  }
  if (after_reconnect) {
    for (const auto& [election, count] : elections_.watched) publishLeader(election);
  }
}

// A verification's read failed with no reconnect to come (an operation
// timeout, say): without another try the hold would stay SUSPENDED. Each
// retry that fails again waits twice as long, up to kMaxReverifyDelay, so
// that a keeper that keeps failing reads is not flooded with them.
void Core::verifyAgainLater() {
  if (link_.reverify_at) return;  // one more round is due already
  link_.reverify_at =
      now() + std::min<Clock::duration>(kReverifyDelay * (int64_t{1} << std::min(link_.reverify_failures, 8)),
                                        kMaxReverifyDelay);
  ++link_.reverify_failures;
}

}  // namespace coordd::core
