#include "core/core.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "coordd/check.h"
#include "core/ids.h"
#include "core/status_map.h"
#include "core/validation.h"
#include "spdlog/spdlog.h"

namespace coordd::core {
namespace {

constexpr auto kSweepInterval = std::chrono::milliseconds(50);
// How often the processes of a client whose stream broke are looked at: its
// holds go soon after its last process exits (a pidfd's exit can show a
// little after the stream's end, and coordctl's watchdog exits later).
constexpr auto kExitCheckInterval = std::chrono::milliseconds(5);
constexpr size_t kRememberEndedSessions = 4096;
constexpr char kClientGone[] = "keepalive stream broken (client gone)";
// Pings are answered at once, but not sooner than this after the stream's
// last event: a flood of pings gets at most one answer per interval, and a
// ping that comes too soon is answered by the next sweep.
constexpr auto kMinPingAnswerInterval = std::chrono::milliseconds(5);

void runAll(std::vector<std::function<void()>>& deferred) {
  for (auto& fn : deferred) fn();
}

}  // namespace

const char* lockStateName(LockState state) {
  switch (state) {
    case LockState::kHeld:
      return "HELD";
    case LockState::kNotHeld:
      return "NOT_HELD";
    case LockState::kSuspended:
      return "SUSPENDED";
    case LockState::kLost:
      return "LOST";
    case LockState::kRestored:
      return "RESTORED";
  }
  return "UNKNOWN";
}

const char* candidateStatusName(CandidateStatus status) {
  switch (status) {
    case CandidateStatus::kNotCandidate:
      return "NOT_CANDIDATE";
    case CandidateStatus::kPrimary:
      return "PRIMARY";
    case CandidateStatus::kSecondary:
      return "SECONDARY";
    case CandidateStatus::kSuspended:
      return "SUSPENDED";
    case CandidateStatus::kTerminated:
      return "TERMINATED";
  }
  return "UNKNOWN";
}

Core::Core(CoreOptions options, backend::Backend& backend)
    : options_(std::move(options)),
      backend_(backend),
      own_timers_(options_.timers == nullptr ? std::make_unique<backend::SerialExecutor>() : nullptr),
      timers_(options_.timers != nullptr ? options_.timers : own_timers_.get()) {
  addGauges();
}

Core::~Core() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    cv_.notify_all();
  }
  if (own_timers_) own_timers_->stop();
}

void Core::start() {
  backend_.start(this);
  scheduleSweep();
}

void Core::shutdown(const std::string& reason, absl::Duration drain) {
  Deferred deferred;
  if (options_.on_readiness) options_.on_readiness(false);
  std::unique_lock<std::mutex> lock(mu_);
  stopping_ = true;
  std::vector<std::string> ids;
  for (const auto& [id, session] : sessions_.live) ids.push_back(id);
  for (const auto& id : ids) endSession(id, reason, deferred, nullptr);
  for (auto& [id, entry] : elections_.observers) entry.observer->onClosed(reason);
  elections_.observers.clear();
  spdlog::info("shutdown: ended {} sessions, waiting for {} coordinator deletes", ids.size(), deletes_.inflight);
  lock.unlock();
  runAll(deferred);
  lock.lock();
  bool drained = cv_.wait_for(lock, absl::ToChronoMilliseconds(drain), [this] { return deletes_.inflight == 0; });
  if (!drained) spdlog::warn("shutdown: {} coordinator deletes still pending after the drain bound", deletes_.inflight);
}

absl::Status Core::serving() const {
  if (stopping_) return absl::UnavailableError("daemon shutting down");
  if (!link_.ready) return absl::UnavailableError("not connected to the coordinator yet; retry");
  return absl::OkStatus();
}

absl::StatusOr<Core::Session*> Core::findSession(const std::string& session_id) {
  if (auto status = validateSessionId(session_id); !status.ok()) return status;
  auto it = sessions_.live.find(session_id);
  if (it != sessions_.live.end()) return &it->second;
  auto ended = sessions_.ended.find(session_id);
  if (ended != sessions_.ended.end()) {
    return absl::FailedPreconditionError(absl::StrCat("session_id: session ", session_id, " ended: ", ended->second));
  }
  return absl::NotFoundError(absl::StrCat("session_id: no session ", session_id));
}

absl::StatusOr<Core::Session*> Core::admitNewHold(const std::string& session_id) {
  auto session = findSession(session_id);
  if (!session.ok()) return session;
  if (auto status = serving(); !status.ok()) return status;
  if (link_.state != backend::LinkState::kConnected) {
    return absl::UnavailableError(
        absl::StrCat("coordinator link ", backend::linkStateName(link_.state), "; retry when it is back"));
  }
  return session;
}

absl::Status Core::admitHold(const Session& session) const {
  if (static_cast<int64_t>(session.holds()) >= options_.limits.max_holds_per_session) {
    return absl::ResourceExhaustedError(absl::StrCat("session ", session.public_id, " holds ", session.holds(),
                                                     " locks, waits and candidacies: the limit "
                                                     "(limits.max_holds_per_session)"));
  }
  return absl::OkStatus();
}

backend::OwnerRecord Core::ownerOf(const Session& session) const {
  return backend::OwnerRecord{options_.node_id, session.public_id, session.owner, session.attributes};
}

void Core::send(Session& session, Event event) {
  if (session.sink) {
    if (event.kind == Event::Kind::kHeartbeat) session.ping_unanswered = false;
    session.sink->send(event);
    session.last_sent = now();
    return;
  }
  // No stream: what became of each hold waits for the next one, the latest
  // per hold (name and token, and candidacy), in order, so that a client that
  // comes back learns of a LOST before any lease the new stream brings, and
  // a new hold of the same name does not hide the loss of the old one.
  if (event.kind != Event::Kind::kLock && event.kind != Event::Kind::kElection) return;
  const auto same_hold = [&event](const Event& kept) {
    if (kept.kind != event.kind || kept.name != event.name) return false;
    // A candidacy's term too: a primaryship lost and regained shows as two.
    return kept.token == event.token && (event.kind == Event::Kind::kLock || kept.candidacy == event.candidacy);
  };
  for (Event& kept : session.missed) {
    if (same_hold(kept)) {
      kept = std::move(event);
      return;
    }
  }
  session.missed.push_back(std::move(event));
}

void Core::sendLock(Session& session, const std::string& name, LockState state, int64_t token,
                    const std::string& reason) {
  spdlog::info("lock {}: name={:?} owner={:?} session={} token={} reason={:?}", lockStateName(state), name,
               session.owner, session.public_id, token, reason);
  Event event;
  event.kind = Event::Kind::kLock;
  event.name = name;
  event.lock_state = state;
  event.token = token;
  event.reason = reason;
  send(session, std::move(event));
}

// --- Sessions ---------------------------------------------------------------

absl::StatusOr<SessionInfo> Core::openSession(const std::string& owner, std::chrono::milliseconds ttl,
                                              const std::map<std::string, std::string>& attributes,
                                              std::shared_ptr<const ClientProcesses> processes) {
  if (auto status = validateName("owner", owner); !status.ok()) return status;
  if (auto status = validateTtl(ttl); !status.ok()) return status;
  if (auto status = validateAttributes(attributes); !status.ok()) return status;
  if (ttl.count() == 0) ttl = kDefaultTtl;

  std::lock_guard<std::mutex> lock(mu_);
  if (auto status = serving(); !status.ok()) return status;
  if (static_cast<int64_t>(sessions_.live.size()) >= options_.limits.max_sessions) {
    return absl::ResourceExhaustedError(
        absl::StrCat("sessions: ", sessions_.live.size(), " open, the limit (limits.max_sessions); close some first"));
  }
  std::string id;
  do {
    id = options_.session_ids ? options_.session_ids() : randomHex(32);
  } while (sessions_.live.count(id) != 0 || sessions_.ended.count(id) != 0);

  Session session;
  session.id = id;
  session.public_id = id.substr(0, 16);
  session.owner = owner;
  session.attributes = attributes;
  session.processes = std::move(processes);
  session.ttl = ttl;
  absl::Duration timeout = backend_.info().session_timeout;
  session.window = timeout == absl::InfiniteDuration() ? ttl : std::min(ttl, absl::ToChronoMilliseconds(timeout));
  session.last_ping = session.last_sent = now();
  SessionInfo info{id, ttl, session.window, options_.node_id};
  sessions_.live.emplace(id, std::move(session));
  spdlog::info("session opened: session={} owner={:?} ttl={}ms", id.substr(0, 16), owner, ttl.count());
  return info;
}

absl::Status Core::attachStream(const std::string& session_id, std::shared_ptr<EventSink> sink, uint64_t ping_id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto session = findSession(session_id);
  if (!session.ok()) return session.status();
  Session& s = **session;
  if (s.sink) return absl::AlreadyExistsError("session_id: a KeepAlive stream is already open for this session");
  s.sink = std::move(sink);
  sessions_.awaiting_exit.erase(session_id);  // a client that lives on has come back
  s.last_ping = now();
  s.last_ping_id = ping_id;
  for (Event& event : s.missed) send(s, std::move(event));
  s.missed.clear();
  send(s, heartbeat(s));
  return absl::OkStatus();
}

absl::Status Core::ping(const std::string& session_id, uint64_t ping_id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto session = findSession(session_id);
  if (!session.ok()) return session.status();
  Session& s = **session;
  s.last_ping = now();
  s.last_ping_id = ping_id;
  s.ping_unanswered = true;
  // Never left unanswered (see kMinPingAnswerInterval): the client's lease
  // would run out with nothing wrong.
  if (s.sink && s.last_ping - s.last_sent >= kMinPingAnswerInterval) send(s, heartbeat(s));
  return absl::OkStatus();
}

bool Core::linkSure() const {
  return link_.state == backend::LinkState::kConnected && now() < backend_.leaseDeadline();
}

Event Core::heartbeat(const Session& session) const {
  Event event;
  event.link = link_.state;
  event.window = session.window;
  event.ping_id = session.last_ping_id;
  if (linkSure()) {
    // Nothing held goes elsewhere before the session's ttl runs out (no
    // sooner than ttl after this ping) nor before the coordinator's hold
    // deadline. The lease vouches for two thirds of each, so that a
    // supervisor has the rest, the margin, to stop its work. Measured from
    // the ping's arrival, which the client's sending precedes.
    const auto millis = [](Clock::duration d) {
      return std::max(std::chrono::milliseconds(0), std::chrono::duration_cast<std::chrono::milliseconds>(d));
    };
    const Clock::time_point lease_end = std::min(session.last_ping + session.ttl * 2 / 3, backend_.leaseDeadline());
    const Clock::time_point hold_end = std::min(session.last_ping + session.ttl, backend_.holdDeadline());
    event.lease = millis(lease_end - session.last_ping);
    event.margin = millis(hold_end - lease_end);
  }
  return event;
}

void Core::detachStream(const std::string& session_id, const EventSink* sink) {
  Deferred deferred;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = sessions_.live.find(session_id);
    if (it == sessions_.live.end() || it->second.sink.get() != sink) return;
    Session& session = it->second;
    if (session.processes && session.processes->gone()) {
      endSession(session_id, kClientGone, deferred, nullptr);
    } else {
      session.sink.reset();
      if (session.processes) {
        sessions_.awaiting_exit.insert(session_id);
        scheduleExitCheck();
      }
      spdlog::info(
          "session {}: KeepAlive stream broken while its client may live on; its holds stay until its processes are "
          "gone or its ttl runs out ({} ms after the last ping)",
          session.public_id, session.ttl.count());
    }
  }
  runAll(deferred);
}

void Core::closeSession(const std::string& session_id, StatusReply reply) {
  Deferred deferred;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto session = findSession(session_id);
    if (!session.ok()) {
      deferred.push_back([reply, status = session.status()] { reply(status); });
    } else {
      endSession(session_id, "closed by client", deferred, [reply] { reply(absl::OkStatus()); });
    }
  }
  runAll(deferred);
}

void Core::endSession(const std::string& session_id, const std::string& reason, Deferred& deferred,
                      std::function<void()> done) {
  auto it = sessions_.live.find(session_id);
  Session session = std::move(it->second);
  sessions_.live.erase(it);
  sessions_.ended[session_id] = reason;
  sessions_.ended_order.push_back(session_id);
  if (sessions_.ended_order.size() > kRememberEndedSessions) {
    sessions_.ended.erase(sessions_.ended_order.front());
    sessions_.ended_order.pop_front();
  }

  for (const auto& [name, waiter_id] : session.waits) {
    finishAcquire(waiter_id, absl::FailedPreconditionError(absl::StrCat("session ended: ", reason)), deferred);
  }
  // Runs `done` after the last coordinator delete of this session.
  auto remaining = std::make_shared<size_t>(1);
  auto one_done = [this, remaining, done]() {
    bool last;
    {
      std::lock_guard<std::mutex> lock(mu_);
      last = --*remaining == 0;
    }
    if (last && done) done();
  };
  for (const auto& [name, held] : session.locks) {
    locks_.holders.erase({name, held.token});
    ++*remaining;
    deleteLock(name, held.token, one_done);
    countLost("session_ended");
    sendLock(session, name, LockState::kLost, held.token, absl::StrCat("session ended: ", reason));
  }
  for (auto& [election, candidacy] : session.candidacies) {
    if (candidacy.registering || candidacy.terminated) continue;  // nothing (yet) in the coordinator
    elections_.candidates.erase({election, candidacy.term});
    ++*remaining;
    deleteCandidate(election, candidacy.term, one_done);
    candidacy.terminated = true;
    candidacy.reason = absl::StrCat("session ended: ", reason);
    sendElection(session, election, candidacy);
  }
  if (session.sink) {
    Event ended;
    ended.kind = Event::Kind::kEnded;
    ended.reason = reason;
    session.sink->send(ended);
    session.sink->close();
  }
  spdlog::info("session ended: session={} owner={:?} reason={:?} released={} withdrawn={}", session.public_id,
               session.owner, reason, session.locks.size(), session.candidacies.size());
  // Drops the initial count outside the lock.
  deferred.push_back(one_done);
}

void Core::deleteLock(const std::string& name, int64_t token, std::function<void()> done) {
  ++deletes_.inflight;
  backend_.unlock(name, token, [this, name, token, done](absl::Status status) {
    onDeleted(Orphan{Orphan::Kind::kLock, name, token}, status);
    if (done) done();
  });
}

void Core::deleteCandidate(const std::string& election, int64_t term, std::function<void()> done) {
  ++deletes_.inflight;
  backend_.resign(election, term, [this, election, term, done](absl::Status status) {
    onDeleted(Orphan{Orphan::Kind::kCandidate, election, term}, status);
    if (done) done();
  });
}

void Core::removeWaiter(const std::string& name, int64_t waiter_id) {
  ++deletes_.inflight;
  backend_.cancelLock(name, waiter_id, [this, name, waiter_id](absl::Status status) {
    onDeleted(Orphan{Orphan::Kind::kWaiter, name, waiter_id}, status);
  });
}

void Core::onDeleted(const Orphan& orphan, const absl::Status& status) {
  std::lock_guard<std::mutex> lock(mu_);
  --deletes_.inflight;
  static constexpr const char* kWhat[] = {"lock", "candidacy", "waiter"};
  if (status.ok() || absl::IsNotFound(status) || absl::IsAborted(status)) {
    // Done, already gone, or gone with the expired coordinator session.
  } else if (!absl::IsPermissionDenied(status) && !absl::IsInvalidArgument(status) &&
             !absl::IsFailedPrecondition(status)) {
    // The link is down, the answer was lost, the server throttles: the
    // sweeper tries again at its next pass.
    spdlog::warn("could not remove {} {:?} token={} from the coordinator ({}); will retry",
                 kWhat[static_cast<int>(orphan.kind)], orphan.name, orphan.token, status.ToString());
    deletes_.orphans.push_back(orphan);
  } else {
    // Refused for good (permissions, a bad request): retrying cannot help. The node
    // stays until its coordinator session ends, or an operator removes it.
    spdlog::error(
        "the coordinator refuses to remove {} {:?} token={} ({}); not retried: it goes with this daemon's "
        "coordinator session, or remove it by hand",
        kWhat[static_cast<int>(orphan.kind)], orphan.name, orphan.token, status.ToString());
  }
  cv_.notify_all();
}

// --- Coordinator link -------------------------------------------------------

void Core::onLinkState(backend::LinkState state) {
  Deferred deferred;
  {
    std::lock_guard<std::mutex> lock(mu_);
    spdlog::log(state == backend::LinkState::kConnected || state == backend::LinkState::kReconnected
                    ? spdlog::level::info
                    : spdlog::level::warn,
                "coordinator link {}", backend::linkStateName(state));
    switch (state) {
      case backend::LinkState::kSuspended: {
        link_.state = state;
        size_t locks = 0;
        size_t candidacies = 0;
        for (auto& [id, session] : sessions_.live) {
          for (auto& [name, held] : session.locks) {
            if (held.suspended) continue;
            held.suspended = true;
            ++locks;
          }
          for (auto& [election, candidacy] : session.candidacies) {
            if (candidacy.registering || candidacy.terminated || candidacy.suspended) continue;
            candidacy.suspended = true;
            ++candidacies;
          }
          // One message says it for every hold of the session: an event per
          // hold would be a burst that a session with many holds cannot
          // take (its stream's queue is bounded).
          send(session, heartbeat(session));
        }
        spdlog::warn("coordinator link suspended: {} locks and {} candidacies of {} sessions in doubt", locks,
                     candidacies, sessions_.live.size());
        break;
      }
      case backend::LinkState::kReconnected:
        link_.state = backend::LinkState::kConnected;
        verifyHolds(true);
        break;
      case backend::LinkState::kExpired:
        link_.state = state;
        ++link_.epoch;
        deletes_.orphans.clear();  // the coordinator deleted them with the session
        for (auto it = locks_.waiting.begin(); it != locks_.waiting.end();) {
          if (!it->second.granted) {
            ++it;
            continue;
          }
          // Granted while suspended, and gone with the session.
          mustFind(sessions_.live, it->second.session_id).waits.erase(it->second.name);
          deferred.push_back([reply = std::move(it->second.reply)] {
            reply(absl::UnavailableError("coordinator session expired while acquiring; retry"));
          });
          it = locks_.waiting.erase(it);
        }
        for (auto& [id, session] : sessions_.live) {
          for (const auto& [name, held] : session.locks) {
            locks_.holders.erase({name, held.token});
            countLost("coordinator_session_expired");
            sendLock(session, name, LockState::kLost, held.token, "coordinator session expired");
          }
          session.locks.clear();
          for (auto& [election, candidacy] : session.candidacies) {
            if (!candidacy.terminated) terminateCandidacy(session, election, "coordinator session expired");
          }
        }
        break;
      case backend::LinkState::kConnected:
        link_.state = state;
        if (!link_.ready) {
          link_.ready = true;
          spdlog::info("ready: node {} serving", options_.node_id);
        }
        for (auto& [election, watch] : elections_.watched) {
          backend_.watchElection(election);
          publishLeader(election);
        }
        break;
    }
    bool serving = link_.state == backend::LinkState::kConnected && !stopping_;
    if (serving != link_.serving_reported && options_.on_readiness) {
      link_.serving_reported = serving;
      deferred.push_back([this, serving] { options_.on_readiness(serving); });
    }
  }
  runAll(deferred);
}

void Core::onLeaderChanged(const std::string& election, const std::optional<backend::Candidate>& leader) {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [id, entry] : elections_.observers) {
    if (entry.election == election) tellObserver(entry, leader);
  }
}

void Core::tellObserver(Observer& entry, const std::optional<backend::Candidate>& leader) {
  // The first answer and the watch's first report both say who leads now.
  const int64_t term = leader ? leader->term : 0;
  if (entry.told_term == term) return;
  entry.told_term = term;
  entry.observer->onLeader(leader);
}

void Core::publishLeader(const std::string& election) {
  backend_.leader(election, [this, election](absl::StatusOr<std::optional<backend::Candidate>> leader) {
    if (leader.ok()) onLeaderChanged(election, *leader);
  });
}

absl::StatusOr<int64_t> Core::addObserver(const std::string& election, std::shared_ptr<LeaderObserver> observer) {
  if (auto status = validateName("election", election); !status.ok()) return status;
  std::lock_guard<std::mutex> lock(mu_);
  if (auto status = serving(); !status.ok()) return status;
  if (static_cast<int64_t>(elections_.observers.size()) >= options_.limits.max_observers) {
    return absl::ResourceExhaustedError(
        absl::StrCat("observers: ", elections_.observers.size(), " streams open, the limit (limits.max_observers)"));
  }
  int64_t id = next_id_++;
  elections_.observers[id] = Observer{election, observer};
  if (elections_.watched[election]++ == 0) backend_.watchElection(election);
  backend_.leader(election, [this, id](absl::StatusOr<std::optional<backend::Candidate>> leader) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = elections_.observers.find(id);
    if (it != elections_.observers.end() && leader.ok()) tellObserver(it->second, *leader);
  });
  return id;
}

void Core::removeObserver(int64_t observer_id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = elections_.observers.find(observer_id);
  if (it == elections_.observers.end()) return;
  std::string election = it->second.election;
  elections_.observers.erase(it);
  if (--elections_.watched[election] == 0) {
    elections_.watched.erase(election);
    backend_.unwatchElection(election);
  }
}

void Core::addGauges() {
  metrics::Registry& registry = options_.metrics->registry;
  const auto count = [&](const char* name, const char* help, int64_t DaemonStatus::*field) {
    registry.gauge(name, help, {}, [this, field] {
      return std::vector<std::pair<metrics::Labels, double>>{{{}, static_cast<double>(daemonStatus().*field)}};
    });
  };
  count("coordd_sessions", "Client sessions open.", &DaemonStatus::sessions);
  count("coordd_locks_held", "Locks held by this daemon's sessions.", &DaemonStatus::locks_held);
  count("coordd_lock_waiters", "Blocking acquires waiting.", &DaemonStatus::lock_waiters);
  count("coordd_calls_pending", "Lock and campaign calls in flight or whose caller has not had the answer yet.",
        &DaemonStatus::calls_pending);
  registry.gauge("coordd_candidacies", "Candidacies of this daemon's sessions, by status.", {"status"}, [this] {
    std::map<std::string, double> by_status{{"PRIMARY", 0}, {"SECONDARY", 0}, {"SUSPENDED", 0}, {"TERMINATED", 0}};
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [id, session] : sessions_.live) {
      for (const auto& [election, candidacy] : session.candidacies) {
        if (!candidacy.registering) ++by_status[candidateStatusName(statusOf(candidacy).status)];
      }
    }
    std::vector<std::pair<metrics::Labels, double>> values;
    for (const auto& [status, count] : by_status) values.push_back({{status}, count});
    return values;
  });
  registry.gauge("coordd_coordinator_link", "The coordinator link: 1 for its current state.", {"state"}, [this] {
    const backend::LinkState link = daemonStatus().link;
    std::vector<std::pair<metrics::Labels, double>> values;
    for (auto state : {backend::LinkState::kConnected, backend::LinkState::kSuspended, backend::LinkState::kReconnected,
                       backend::LinkState::kExpired}) {
      values.push_back({{backend::linkStateName(state)}, state == link ? 1.0 : 0.0});
    }
    return values;
  });
}

DaemonStatus Core::daemonStatus() const {
  std::lock_guard<std::mutex> lock(mu_);
  DaemonStatus status;
  status.link = link_.state;
  status.ready = link_.ready && !stopping_ && link_.state == backend::LinkState::kConnected;
  status.sessions = static_cast<int64_t>(sessions_.live.size());
  status.lock_waiters = static_cast<int64_t>(locks_.waiting.size());
  status.calls_pending = static_cast<int64_t>(calls_.size());
  for (const auto& [id, session] : sessions_.live) {
    status.locks_held += static_cast<int64_t>(session.locks.size());
    status.candidacies += static_cast<int64_t>(session.candidacies.size());
  }
  return status;
}

// --- Background work --------------------------------------------------------

// Every kSweepInterval, whatever happens meanwhile: a delete that keeps
// failing is retried at that pace, never in a loop.
void Core::scheduleSweep() {
  timers_->postAt(now() + kSweepInterval, [this] {
    Deferred deferred;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return;
      sweep(deferred);
    }
    runAll(deferred);
    scheduleSweep();
  });
}

// Every kExitCheckInterval while a client whose stream broke may still exit.
void Core::scheduleExitCheck() {
  if (sessions_.exit_check_scheduled) return;
  sessions_.exit_check_scheduled = true;
  timers_->postAt(now() + kExitCheckInterval, [this] {
    Deferred deferred;
    {
      std::lock_guard<std::mutex> lock(mu_);
      sessions_.exit_check_scheduled = false;
      if (stopping_) return;
      endExitedClients(deferred);
      if (!sessions_.awaiting_exit.empty()) scheduleExitCheck();
    }
    runAll(deferred);
  });
}

void Core::endExitedClients(Deferred& deferred) {
  std::vector<std::string> gone;
  for (auto it = sessions_.awaiting_exit.begin(); it != sessions_.awaiting_exit.end();) {
    auto session = sessions_.live.find(*it);
    if (session == sessions_.live.end()) {
      it = sessions_.awaiting_exit.erase(it);  // ended meanwhile
      continue;
    }
    if (session->second.processes->gone()) gone.push_back(*it);
    ++it;
  }
  for (const auto& id : gone) {
    sessions_.awaiting_exit.erase(id);
    endSession(id, kClientGone, deferred, nullptr);
  }
}

void Core::sweep(Deferred& deferred) {
  const auto now = this->now();
  std::vector<std::pair<std::string, std::string>> ending;  // id, reason
  for (auto& [id, session] : sessions_.live) {
    if (now - session.last_ping > session.ttl) {
      ending.emplace_back(id, absl::StrCat("ttl expired: no ping for ", session.ttl.count(), " ms"));
    } else if (session.sink && (now - session.last_sent >= session.window / 3 ||
                                (session.ping_unanswered && now - session.last_sent >= kMinPingAnswerInterval))) {
      send(session, heartbeat(session));
    }
  }
  for (const auto& [id, reason] : ending) endSession(id, reason, deferred, nullptr);

  std::vector<int64_t> timed_out;
  for (const auto& [waiter_id, pending] : locks_.waiting) {
    if (pending.deadline <= now) timed_out.push_back(waiter_id);
  }
  for (int64_t waiter_id : timed_out) {
    const auto& pending = mustFind(locks_.waiting, waiter_id);
    finishAcquire(
        waiter_id,
        absl::DeadlineExceededError(absl::StrCat("timeout_ms: lock '", pending.name, "' not acquired in time")),
        deferred);
  }

  if (link_.state != backend::LinkState::kConnected) return;
  if (link_.reverify_at && now >= *link_.reverify_at) verifyHolds(false);
  std::vector<Orphan> orphans;
  orphans.swap(deletes_.orphans);
  for (const auto& orphan : orphans) {
    switch (orphan.kind) {
      case Orphan::Kind::kLock:
        deleteLock(orphan.name, orphan.token, nullptr);
        break;
      case Orphan::Kind::kCandidate:
        deleteCandidate(orphan.name, orphan.token, nullptr);
        break;
      case Orphan::Kind::kWaiter:
        removeWaiter(orphan.name, orphan.token);
        break;
    }
  }
  for (auto& [id, session] : sessions_.live) {
    for (auto& [election, candidacy] : session.candidacies) {
      if (candidacy.terminated && candidacy.rejoin && !candidacy.registering) {
        registerCandidacy(id, election, nullptr);
      }
    }
  }
}

}  // namespace coordd::core
