#include "simulation.h"

#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "backend/keeper/faulty_keeper.h"
#include "backend/recipes/layout.h"

namespace coordd::sim {
namespace {

using backend::LinkState;
using core::CandidateStatus;
using core::Event;
using core::LockState;

constexpr int64_t kSessionTimeoutMs = 3000;  // T, the keeper's
// L4: more keeper calls than this in one simulated second is a flood (a few
// hundred is what two clients' work makes).
constexpr int64_t kMaxCallsPerSecond = 3000;
const std::vector<std::string> kLocks = {"job-a", "job-b", "job-c"};
const std::vector<std::string> kElections = {"svc-a", "svc-b"};

std::string ms(Clock::time_point t) {
  return absl::StrFormat("%9.3f", std::chrono::duration<double, std::milli>(t.time_since_epoch() - 1h).count());
}

class Simulation;

struct SimDaemon {
  explicit SimDaemon(World& world) : backend_strand(world), core_strand(world), server_strand(world) {}
  int index = 0;
  Strand backend_strand;       // the backend's thread and the keeper client's
  Strand core_strand;          // the sweeper
  Strand server_strand;        // the gRPC threads: every call of a client or an admin
  int64_t keeper_session = 0;  // the first session: the one that holds nodes
  int64_t watch_session = 0;
  int64_t call_second = 0;  // L4: keeper calls in the current simulated second
  int64_t calls = 0;
  std::unique_ptr<backend::recipes::KeeperBackend> backend;
  std::unique_ptr<core::Core> core;
};

struct Hold {
  int64_t token = 0;
  bool suspended = false;
};

struct SimClient {
  explicit SimClient(World& world) : strand(world) {}
  int index = 0;
  bool unsafe = false;
  SimDaemon* daemon = nullptr;
  Strand strand;  // the client process
  std::string session;
  bool opening = false;
  int64_t stream = 0;  // which stream the events come from; 0: none attached
  std::chrono::milliseconds ttl{2000};
  std::chrono::milliseconds window{2000};  // the keepalive window the daemon gave
  bool probe = false;                      // opened once the faults are over
  uint64_t next_ping = 1;
  std::map<uint64_t, Clock::time_point> sent;
  Clock::time_point valid_until{};
  std::map<std::string, Hold> locks;
  std::map<std::string, Hold> primary;    // election -> term
  bool resync = false;                    // holds in doubt until checked after a renewal
  std::set<std::string> acquiring;        // a TryAcquire or Acquire not answered yet
  std::set<std::string> campaigning;      // a Campaign call not answered yet
  std::set<std::string> candidacies;      // Campaign answered OK, not resigned nor terminated for good
  std::set<std::string> rejoins;          // campaigned with rejoin: TERMINATED is not the end
  std::set<std::string> resigned;         // its events no longer count, until a new Campaign
  std::shared_ptr<core::EventSink> sink;  // the attached stream's

  // As the library pings: every third of the keepalive window.
  std::chrono::milliseconds pingInterval() const { return std::max(window / 3, std::chrono::milliseconds(100)); }
  bool leaseValid(Clock::time_point now) const { return unsafe || now < valid_until; }
  bool holds(const std::string& name, Clock::time_point now) const {
    auto it = locks.find(name);
    return it != locks.end() && (unsafe || (!it->second.suspended && leaseValid(now)));
  }
  bool isPrimary(const std::string& election, Clock::time_point now) const {
    auto it = primary.find(election);
    return it != primary.end() && (unsafe || (!it->second.suspended && leaseValid(now)));
  }
};

// The KeepAlive stream of one client, as the gRPC layer would carry it.
class StreamSink : public core::EventSink {
 public:
  StreamSink(Simulation* sim, SimClient* client, int64_t stream) : sim_(sim), client_(client), stream_(stream) {}
  void send(const Event& event) override;
  void close() override;

 private:
  Simulation* sim_;
  SimClient* client_;
  int64_t stream_;
};

class Simulation {
 public:
  Simulation(uint64_t seed, const SimOptions& options)
      : world_(seed), options_(options), keeper_(std::make_shared<backend::keeper::MemoryKeeper>(kSessionTimeoutMs)) {}

  SeedResult run();
  void onEvent(SimClient& client, int64_t stream, const Event& event);
  void onStreamClosed(SimClient& client, int64_t stream);

 private:
  void note(const std::string& what);
  void violate(const std::string& what);
  void check();

  void startDaemon(int index);
  void countCall(SimDaemon& d);
  void dropConnection(int64_t session, Clock::time_point until);
  void injectFault();
  void freezeDaemon(SimDaemon& d, std::chrono::milliseconds how_long);
  void revoke(const std::string& name, bool election, int64_t token);

  // A call to the client's daemon: it runs on the daemon's gRPC threads.
  void rpc(SimClient& c, std::function<void(core::Core&)> call);
  void act(SimClient& c);
  void scheduleAct(SimClient& c);
  void schedulePing(SimClient& c, int64_t stream);
  void open(SimClient& c);
  void attach(SimClient& c);
  // A TryAcquire, Acquire or Campaign as its service drives the core.
  template <typename T>
  void call(SimClient& c, std::optional<std::chrono::milliseconds> give_up_within, const char* what,
            std::function<int64_t(core::Core&, core::Reply<T>)> start,
            std::function<void(const absl::StatusOr<T>&)> answered, std::function<void()> gave_up);
  void tryAcquire(SimClient& c, const std::string& name);
  void acquire(SimClient& c, const std::string& name, std::chrono::milliseconds timeout);
  void giveBack(SimClient& c, const std::string& name);
  void release(SimClient& c, const std::string& name);
  void campaign(SimClient& c, const std::string& election);
  void resign(SimClient& c, const std::string& election);
  void write(SimClient& c);
  void closeSession(SimClient& c);
  void lostSession(SimClient& c);
  void silence(SimClient& c);
  void resync(SimClient& c);

  void heal();
  void checkKnown();
  void letGo();
  void checkLiveness();
  void runUntil(Clock::time_point until);

  World world_;
  const SimOptions options_;
  std::shared_ptr<backend::keeper::MemoryKeeper> keeper_;
  std::vector<std::unique_ptr<SimDaemon>> daemons_;
  std::vector<std::unique_ptr<SimClient>> clients_;
  std::map<std::string, int64_t> resource_;                  // the fenced resource: highest token accepted per lock
  std::map<int64_t, Clock::time_point> disconnected_until_;  // keeper session -> reconnect time
  std::map<int64_t, int64_t> episodes_;                      // keeper session -> disconnections so far
  int64_t next_stream_ = 1;
  bool chaos_ = true;
  double loss_ = 0.01;  // the share of keeper answers lost while chaos_
  std::deque<std::string> trace_;
  // Holds an admin removed, (name, token or term): not counted from then on,
  // even by a client that hears of them late.
  std::set<std::pair<std::string, int64_t>> revoked_;
  SeedResult result_;
};

void StreamSink::send(const Event& event) {
  // Called under the core's lock: the event travels to the client.
  client_->strand.post(
      [sim = sim_, client = client_, stream = stream_, event] { sim->onEvent(*client, stream, event); });
}

void StreamSink::close() {
  client_->strand.post([sim = sim_, client = client_, stream = stream_] { sim->onStreamClosed(*client, stream); });
}

void Simulation::note(const std::string& what) {
  trace_.push_back(absl::StrCat(ms(world_.now()), "  ", what));
  if (trace_.size() > 4000) trace_.pop_front();
}

void Simulation::violate(const std::string& what) {
  if (result_.violation) return;
  result_.violation = what;
  note(absl::StrCat("VIOLATION ", what));
  result_.trace.assign(trace_.begin(), trace_.end());
}

// I2, I3 at this moment.
void Simulation::check() {
  const Clock::time_point now = world_.now();
  for (const auto& name : kLocks) {
    std::vector<int> holders;
    for (const auto& c : clients_) {
      if (c->holds(name, now) && !revoked_.count({name, c->locks.at(name).token})) holders.push_back(c->index);
    }
    if (holders.size() > 1) {
      violate(absl::StrFormat("I2: clients %d and %d both hold %s", holders[0], holders[1], name));
    }
  }
  for (const auto& election : kElections) {
    std::vector<int> primaries;
    for (const auto& c : clients_) {
      if (c->isPrimary(election, now) && !revoked_.count({election, c->primary.at(election).token})) {
        primaries.push_back(c->index);
      }
    }
    if (primaries.size() > 1) {
      violate(absl::StrFormat("I3: clients %d and %d both primary of %s", primaries[0], primaries[1], election));
    }
  }
}

// --- Daemons and their faults -------------------------------------------

void Simulation::countCall(SimDaemon& d) {
  const int64_t second = std::chrono::duration_cast<std::chrono::seconds>(world_.now().time_since_epoch()).count();
  if (second != d.call_second) {
    d.call_second = second;
    d.calls = 0;
  }
  if (++d.calls == kMaxCallsPerSecond + 1) {
    violate(absl::StrFormat("L4: daemon %d made more than %d keeper calls in one simulated second", d.index,
                            kMaxCallsPerSecond));
  }
}

void Simulation::startDaemon(int index) {
  auto d = std::make_unique<SimDaemon>(world_);
  d->index = index;
  SimDaemon* raw = d.get();
  backend::recipes::KeeperOptions options;
  options.kind = "sim";
  options.name = "the simulated ensemble";
  options.root = "/replicante";
  options.session_timeout = absl::Milliseconds(kSessionTimeoutMs);
  options.cleaner_interval = absl::Seconds(2);
  options.executor = &d->backend_strand;
  // Both of the daemon's sessions, each with its faults; `slot` keeps the
  // latest one's id for the faults injected from outside.
  auto open_for = [this, raw](int64_t SimDaemon::*slot, const char* what) -> backend::keeper::KeeperFactory {
    return [this, raw, slot, what](backend::keeper::Keeper::Post post, backend::keeper::Keeper::SessionWatch watch)
               -> absl::StatusOr<std::unique_ptr<backend::keeper::Keeper>> {
      auto inner =
          keeper_->open(post, [this, raw, what, watch = std::move(watch)](backend::keeper::SessionState state) {
            static const char* const kStates[] = {"CONNECTED", "CONNECTING", "EXPIRED", "AUTH_FAILED"};
            note(absl::StrFormat("daemon %d: %s state %s", raw->index, what, kStates[static_cast<int>(state)]));
            watch(state);
          });
      raw->*slot = inner->sessionId();
      note(absl::StrFormat("daemon %d: %s 0x%x", raw->index, what, raw->*slot));
      using backend::keeper::FaultyKeeper;
      const int64_t session = inner->sessionId();
      auto policy = [this, raw](const std::string&, const std::string&) {
        countCall(*raw);
        if (!world_.chance(loss_)) return FaultyKeeper::Fault::kNone;
        if (world_.chance(0.5)) {
          ++result_.faults["answer lost, request not applied"];
          return FaultyKeeper::Fault::kLoseBeforeApplied;
        }
        ++result_.faults["answer lost, request applied"];
        return FaultyKeeper::Fault::kLoseAfterApplied;
      };
      auto lost = [this, session] {
        if (chaos_) dropConnection(session, world_.now() + std::chrono::milliseconds(world_.uniform(1, 2000)));
      };
      auto observer = [this, session](const std::string& op, const std::string& path,
                                      const backend::keeper::Result& r) {
        if (op == "multi") ++result_.multis;
        if (!options_.trace_keeper) return;
        if (op == "multi") {
          // Its ops' codes, and the paths it created.
          std::string ops;
          for (const auto& one : r.results)
            ops += " " + std::string(backend::keeper::codeName(one.code)) + " " + one.path;
          return note(
              absl::StrFormat("0x%x multi from %s: %s;%s", session, path, backend::keeper::codeName(r.code), ops));
        }
        if (op != "create" && op != "delete") return;  // the trace keeps to what changes the tree
        note(absl::StrFormat("0x%x %s %s: %s %s czxid %d", session, op, path, backend::keeper::codeName(r.code), r.path,
                             r.stat.czxid));
      };
      return std::make_unique<FaultyKeeper>(std::move(inner), post, policy, lost, observer);
    };
  };
  options.open_session = open_for(&SimDaemon::keeper_session, "keeper session");
  options.open_watch_session = open_for(&SimDaemon::watch_session, "watch session");
  d->backend = std::make_unique<backend::recipes::KeeperBackend>(std::move(options));
  core::CoreOptions core_options;
  core_options.node_id = absl::StrFormat("%032x", index + 1);
  core_options.timers = &d->core_strand;
  core_options.session_ids = [this] { return absl::StrFormat("%016x%016x", world_.rng()(), world_.rng()()); };
  d->core = std::make_unique<core::Core>(core_options, *d->backend);
  d->core->start();
  daemons_.push_back(std::move(d));
}

// The keeper session loses its connection until `until`; the server expires
// it a session timeout after it last heard from it.
void Simulation::dropConnection(int64_t session, Clock::time_point until) {
  if (disconnected_until_.count(session) > 0) return;
  ++result_.faults["connection lost"];
  disconnected_until_[session] = until;
  const int64_t episode = ++episodes_[session];
  note(absl::StrFormat("keeper session 0x%x disconnected for %d ms", session,
                       std::chrono::duration_cast<std::chrono::milliseconds>(until - world_.now()).count()));
  keeper_->disconnect(session);
  // Unheard of since now: expired a timeout later if still away, or closed
  // by its daemon meanwhile (a close that could not reach the server).
  world_.at(world_.now() + std::chrono::milliseconds(kSessionTimeoutMs), [this, session, episode] {
    if (episodes_[session] != episode) return;
    if (!keeper_->abandoned(session) && disconnected_until_.count(session) == 0) return;
    ++result_.faults["session expired"];
    note(absl::StrFormat("keeper session 0x%x expired by the server", session));
    keeper_->expire(session);
  });
  world_.at(until, [this, session] {
    disconnected_until_.erase(session);
    keeper_->reconnect(session);
  });
}

void Simulation::freezeDaemon(SimDaemon& d, std::chrono::milliseconds how_long) {
  ++result_.faults["daemon frozen"];
  note(absl::StrFormat("daemon %d frozen for %d ms", d.index, how_long.count()));
  const auto until = world_.now() + how_long;
  d.backend_strand.freezeUntil(until);
  d.core_strand.freezeUntil(until);
  d.server_strand.freezeUntil(until);
  // Its keeper client stops pinging too: past the timeout the server
  // expires the session.
  if (how_long > std::chrono::milliseconds(kSessionTimeoutMs)) {
    for (const int64_t session : {d.keeper_session, d.watch_session}) {
      world_.at(world_.now() + std::chrono::milliseconds(kSessionTimeoutMs), [this, session] {
        ++result_.faults["session expired"];
        note(absl::StrFormat("keeper session 0x%x expired by the server", session));
        keeper_->expire(session);
      });
    }
  }
}

// An admin's force release or step-down overrides the holder, whatever it
// believes (it may be frozen and unable to hear): from the moment the admin's
// call runs, the checker no longer counts the hold it removes (`token`, or
// the current one when 0).
void Simulation::revoke(const std::string& name, bool election, int64_t token) {
  const backend::recipes::Layout layout("/replicante");
  if (token != 0) {
    // The one the admin's call removed.
  } else if (!election) {
    if (auto node = keeper_->peek(layout.lock(name))) token = node->stat.czxid;
  } else if (auto dir = keeper_->peek(layout.election(name)); dir && !dir->children.empty()) {
    // The primary: the lowest sequence number.
    std::string first = dir->children.front();
    for (const auto& child : dir->children) {
      if (child.size() >= 10 && child.substr(child.size() - 10) < first.substr(first.size() - 10)) first = child;
    }
    if (auto node = keeper_->peek(layout.election(name) + "/" + first)) token = node->stat.czxid;
  }
  if (token == 0) return;
  revoked_.insert({name, token});
  for (auto& c : clients_) {
    auto& holds = election ? c->primary : c->locks;
    if (auto it = holds.find(name); it != holds.end() && it->second.token == token) holds.erase(it);
  }
}

void Simulation::injectFault() {
  if (!chaos_) return;
  SimDaemon& d = *daemons_[world_.uniform(0, static_cast<int64_t>(daemons_.size()) - 1)];
  SimClient& c = *clients_[world_.uniform(0, static_cast<int64_t>(clients_.size()) - 1)];
  switch (world_.uniform(0, 7)) {
    case 0:
      dropConnection(world_.chance(0.3) ? d.watch_session : d.keeper_session,
                     world_.now() + std::chrono::milliseconds(world_.uniform(1, 300)));
      break;
    case 1:
      dropConnection(world_.chance(0.3) ? d.watch_session : d.keeper_session,
                     world_.now() + std::chrono::milliseconds(world_.uniform(300, 5000)));
      break;
    case 2:
      freezeDaemon(d, std::chrono::milliseconds(world_.uniform(10, 5000)));
      break;
    case 3: {
      ++result_.faults["client frozen"];
      const auto how_long = std::chrono::milliseconds(world_.uniform(10, 4000));
      note(absl::StrFormat("client %d frozen for %d ms", c.index, how_long.count()));
      c.strand.freezeUntil(world_.now() + how_long);
      break;
    }
    case 4:
      if (!c.session.empty() && c.stream != 0) {
        ++result_.faults["stream broken"];
        note(absl::StrFormat("client %d: stream %d broken", c.index, c.stream));
        // Both ends see it: the service detaches. The client either gives
        // the session up (as the C++ library does) or attaches a new stream
        // later, trusting nothing it held until it has checked it again.
        rpc(c, [session = c.session, sink = c.sink](core::Core& core) { core.detachStream(session, sink.get()); });
        c.stream = 0;
        c.sink.reset();
        if (world_.chance(0.5)) {
          lostSession(c);
        } else {
          silence(c);
        }
      }
      break;
    case 5: {
      ++result_.faults["admin force release"];
      const std::string& name = kLocks[world_.uniform(0, static_cast<int64_t>(kLocks.size()) - 1)];
      note(absl::StrFormat("admin: force release %s through daemon %d", name, d.index));
      d.server_strand.post([this, &d, name] {
        revoke(name, false, 0);
        d.backend->forceUnlock(name, [this, name](absl::StatusOr<backend::LockHolder> holder) {
          if (holder.ok()) revoke(name, false, holder->token);
        });
      });
      break;
    }
    case 6: {
      ++result_.faults["admin step-down"];
      const std::string& election = kElections[world_.uniform(0, static_cast<int64_t>(kElections.size()) - 1)];
      note(absl::StrFormat("admin: step-down %s through daemon %d", election, d.index));
      d.server_strand.post([this, &d, election] {
        revoke(election, true, 0);
        d.backend->stepDown(election, [this, election](absl::StatusOr<backend::Candidate> primary) {
          if (primary.ok()) revoke(election, true, primary->term);
        });
      });
      break;
    }
    case 7: {
      // Two reconnects within one round trip of the verification that the
      // first one starts.
      ++result_.faults["connection flaps"];
      const int64_t session = d.keeper_session;
      const auto back = world_.now() + std::chrono::microseconds(world_.uniform(1, 500));
      dropConnection(session, back);
      world_.at(back + std::chrono::microseconds(world_.uniform(1, 700)), [this, session] {
        if (chaos_) dropConnection(session, world_.now() + std::chrono::microseconds(world_.uniform(1, 500)));
      });
      break;
    }
  }
}

// --- Clients ----------------------------------------------------------------

void Simulation::onEvent(SimClient& c, int64_t stream, const Event& event) {
  if (stream != c.stream || c.session.empty()) return;
  const Clock::time_point now = world_.now();
  switch (event.kind) {
    case Event::Kind::kHeartbeat:
      if (event.link == LinkState::kSuspended || event.link == LinkState::kExpired) {
        c.valid_until = std::min(c.valid_until, now);  // the library goes silent
        silence(c);
      } else if (auto it = c.sent.find(event.ping_id); it != c.sent.end() && event.lease.count() > 0) {
        if (now >= c.valid_until) {
          // The lease ran out before this renewal: with no fault under way,
          // the daemon failed a client that pinged on time.
          if (c.probe && c.valid_until != Clock::time_point{}) {
            violate(
                absl::StrFormat("L5: client %d's lease ran out with no fault (pinged every %d ms, lease until "
                                "%s, renewed at %s)",
                                c.index, c.pingInterval().count(), ms(c.valid_until), ms(now)));
          }
          silence(c);
        }
        c.valid_until = std::max(c.valid_until, it->second + event.lease);
        if (c.resync && c.leaseValid(now)) resync(c);
      }
      break;
    case Event::Kind::kLock:
      note(absl::StrFormat("client %d: lock %s %s token %d", c.index, event.name, core::lockStateName(event.lock_state),
                           event.token));
      if (c.unsafe) break;
      if (event.lock_state == LockState::kLost || event.lock_state == LockState::kNotHeld) {
        c.locks.erase(event.name);
      } else if (event.lock_state == LockState::kSuspended) {
        if (auto it = c.locks.find(event.name); it != c.locks.end()) it->second.suspended = true;
      } else if (auto it = c.locks.find(event.name);
                 it != c.locks.end() && it->second.token == event.token && !c.resync) {
        it->second.suspended = false;  // HELD, RESTORED
      }
      break;
    case Event::Kind::kElection:
      note(absl::StrFormat("client %d: election %s %s term %d", c.index, event.name,
                           core::candidateStatusName(event.status), event.token));
      if (c.resigned.count(event.name)) break;  // the library's election handle is done
      // Without rejoin the candidacy is over: the client may campaign again
      // (the core replaces a terminated candidacy).
      if (event.status == CandidateStatus::kTerminated && !c.rejoins.count(event.name)) {
        c.candidacies.erase(event.name);
      }
      if (event.status == CandidateStatus::kPrimary) {
        if (!c.primary.count(event.name) || c.primary[event.name].token != event.token) ++result_.primaryships;
        c.primary[event.name] = Hold{event.token, c.resync};
      } else if (!c.unsafe) {
        if (event.status == CandidateStatus::kSuspended) {
          if (auto it = c.primary.find(event.name); it != c.primary.end()) it->second.suspended = true;
        } else {
          c.primary.erase(event.name);
        }
      }
      break;
    case Event::Kind::kEnded:
      note(absl::StrFormat("client %d: session ended: %s", c.index, event.reason));
      lostSession(c);
      break;
  }
  check();
}

// The lease ran out, or the link is suspended, or the stream was replaced:
// what the client held is in doubt until checked again (the library's rule).
void Simulation::silence(SimClient& c) {
  if (c.unsafe) return;
  for (auto& [name, hold] : c.locks) hold.suspended = true;
  for (auto& [election, hold] : c.primary) hold.suspended = true;
  c.resync = true;
}

// After a renewal that ended a silence: Check and Status for each hold.
void Simulation::resync(SimClient& c) {
  c.resync = false;
  const std::string session = c.session;
  for (const auto& [name, hold] : c.locks) {
    rpc(c, [this, &c, session, name = name, token = hold.token](core::Core& core) {
      auto state = core.check(session, name);
      c.strand.post([this, &c, session, name, token, state] {
        auto it = c.locks.find(name);
        if (c.session != session || c.resync || it == c.locks.end() || it->second.token != token) return;
        if (state.ok() && state->state == LockState::kHeld && state->token == token) {
          it->second.suspended = false;
        } else if (!state.ok() || state->state != LockState::kSuspended) {
          c.locks.erase(it);
        }
        check();
      });
    });
  }
  for (const auto& [election, hold] : c.primary) {
    rpc(c, [this, &c, session, election = election, term = hold.token](core::Core& core) {
      auto status = core.status(session, election);
      c.strand.post([this, &c, session, election, term, status] {
        auto it = c.primary.find(election);
        if (c.session != session || c.resync || it == c.primary.end() || it->second.token != term) return;
        if (status.ok() && status->status == CandidateStatus::kPrimary && status->term == term) {
          it->second.suspended = false;
        } else if (!status.ok() || status->status != CandidateStatus::kSuspended) {
          c.primary.erase(it);
        }
        check();
      });
    });
  }
}

void Simulation::onStreamClosed(SimClient& c, int64_t stream) {
  if (stream == c.stream) c.stream = 0;
}

void Simulation::lostSession(SimClient& c) {
  if (!c.unsafe) {
    c.locks.clear();
    c.primary.clear();
  }
  c.session.clear();
  c.stream = 0;
  c.acquiring.clear();
  c.campaigning.clear();
  c.candidacies.clear();
  c.resigned.clear();
  c.resync = false;
}

void Simulation::rpc(SimClient& c, std::function<void(core::Core&)> call) {
  c.daemon->server_strand.post([core = c.daemon->core.get(), call = std::move(call)] { call(*core); });
}

void Simulation::open(SimClient& c) {
  if (c.opening) return;
  static const std::chrono::milliseconds kTtls[] = {1000ms, 2000ms, 3000ms};
  c.ttl = kTtls[world_.uniform(0, 2)];
  c.opening = true;
  rpc(c, [this, &c, ttl = c.ttl](core::Core& core) {
    auto info = core.openSession(absl::StrCat("client-", c.index), ttl, {});
    c.strand.post([this, &c, info] {
      c.opening = false;
      if (!info.ok()) return;
      c.session = info->session_id;
      c.window = info->window;
      c.valid_until = {};
      note(absl::StrFormat("client %d: session opened on daemon %d, ttl %d ms", c.index, c.daemon->index,
                           c.ttl.count()));
      attach(c);
    });
  });
}

void Simulation::attach(SimClient& c) {
  const int64_t stream = next_stream_++;
  const uint64_t ping = c.next_ping++;
  c.sent[ping] = world_.now();
  c.stream = stream;
  c.sink = std::make_shared<StreamSink>(this, &c, stream);
  rpc(c, [this, &c, session = c.session, sink = c.sink, ping, stream](core::Core& core) {
    auto attached = core.attachStream(session, sink, ping);
    c.strand.post([this, &c, attached, session, stream] {
      if (c.session != session || c.stream != stream) return;
      if (attached.ok()) return schedulePing(c, stream);
      c.stream = 0;
      if (absl::IsNotFound(attached) || absl::IsFailedPrecondition(attached)) lostSession(c);
    });
  });
}

void Simulation::schedulePing(SimClient& c, int64_t stream) {
  c.strand.postAt(world_.now() + c.pingInterval(), [this, &c, stream] {
    if (c.stream != stream || c.session.empty()) return;
    const uint64_t ping = c.next_ping++;
    c.sent[ping] = world_.now();
    if (c.sent.size() > 64) c.sent.erase(c.sent.begin());
    rpc(c, [this, &c, session = c.session, ping](core::Core& core) {
      auto status = core.ping(session, ping);
      c.strand.post([this, &c, status, session] {
        if (!status.ok() && c.session == session) lostSession(c);
      });
    });
    schedulePing(c, stream);
  });
}

// As CancellableCall drives the core: the call, its answer, then OnDone
// (callAnswered); or, at a random moment within `give_up_within`, the caller
// giving up (OnCancel: cancelCall) before the answer reaches it, and OnDone
// after all.
template <typename T>
void Simulation::call(SimClient& c, std::optional<std::chrono::milliseconds> give_up_within, const char* what,
                      std::function<int64_t(core::Core&, core::Reply<T>)> start,
                      std::function<void(const absl::StatusOr<T>&)> answered, std::function<void()> gave_up) {
  struct State {
    int64_t id = 0;
    bool answered = false;
    bool given_up = false;
    bool may_give_up = false;  // the caller has a deadline
  };
  const std::string session = c.session;
  auto state = std::make_shared<State>();
  state->may_give_up = give_up_within.has_value();
  rpc(c, [this, &c, start, answered, gave_up, what, state, session](core::Core& core) {
    state->id = start(core, [this, &c, answered, gave_up, what, state, session](absl::StatusOr<T> r) {
      c.strand.post([this, &c, answered, gave_up, what, state, session, r] {
        rpc(c, [state](core::Core& core) {
          if (state->id != 0) core.callAnswered(state->id);
        });
        if (state->given_up) return;  // nobody reads it
        if (state->may_give_up && c.session == session && world_.chance(0.05)) {
          // The answer was sent (gRPC saw the call done, not cancelled) but
          // the caller's deadline came first: it never reads it.
          state->given_up = true;
          ++result_.faults[absl::StrCat(what, " answer lost")];
          note(absl::StrFormat("client %d: %s answer lost", c.index, what));
          gave_up();
          return;
        }
        state->answered = true;
        answered(r);
      });
    });
  });
  if (!give_up_within || !world_.chance(0.3)) return;
  const auto when = world_.now() + std::chrono::microseconds(world_.uniform(0, 1000 * give_up_within->count()));
  c.strand.postAt(when, [this, &c, session, what, state, gave_up] {
    if (c.session != session || state->answered || state->given_up) return;
    state->given_up = true;
    ++result_.faults[absl::StrCat(what, " given up")];
    note(absl::StrFormat("client %d: %s given up", c.index, what));
    // gRPC's cancel and the library's give-back travel apart: either may
    // reach the core first.
    const bool cancel_first = world_.chance(0.5);
    const auto cancel = [this, &c, state] {
      rpc(c, [state](core::Core& core) {
        if (state->id != 0) core.cancelCall(state->id);
      });
    };
    if (cancel_first) cancel();
    gave_up();
    if (!cancel_first) cancel();
  });
}

void Simulation::tryAcquire(SimClient& c, const std::string& name) {
  if (c.locks.count(name) || c.acquiring.count(name)) return;
  c.acquiring.insert(name);
  const std::string session = c.session;
  call<core::TryAcquireResult>(
      c, 3ms, "TryAcquire",
      [session, name](core::Core& core, core::Reply<core::TryAcquireResult> reply) {
        return core.tryAcquire(session, name, std::move(reply));
      },
      [this, &c, name, session](const absl::StatusOr<core::TryAcquireResult>& r) {
        if (c.session != session) return;
        c.acquiring.erase(name);
        if (!r.ok() || !r->acquired) return;
        ++result_.grants;
        note(absl::StrFormat("client %d: TryAcquire %s granted, token %d", c.index, name, r->token));
        c.locks[name] = Hold{r->token, c.resync};
        check();
      },
      [this, &c, name] { giveBack(c, name); });
}

void Simulation::acquire(SimClient& c, const std::string& name, std::chrono::milliseconds timeout) {
  if (c.locks.count(name) || c.acquiring.count(name)) return;
  c.acquiring.insert(name);
  const std::string session = c.session;
  call<int64_t>(
      c, timeout, "Acquire",
      [session, name, timeout](core::Core& core, core::Reply<int64_t> reply) {
        return core.acquire(session, name, timeout, std::move(reply));
      },
      [this, &c, name, session](const absl::StatusOr<int64_t>& r) {
        if (c.session != session) return;
        c.acquiring.erase(name);
        if (!r.ok()) return;
        note(absl::StrFormat("client %d: Acquire %s granted, token %d", c.index, name, *r));
        ++result_.grants;
        c.locks[name] = Hold{*r, c.resync};
        check();
      },
      [this, &c, name] { giveBack(c, name); });
}

// As the library does after a lock call whose outcome it cannot know (its
// deadline, a transport error): it releases what the call may have got.
void Simulation::giveBack(SimClient& c, const std::string& name) {
  c.acquiring.erase(name);
  note(absl::StrFormat("client %d: Release %s (acquire outcome unknown)", c.index, name));
  rpc(c, [session = c.session, name](core::Core& core) { core.release(session, name, [](absl::Status) {}); });
}

void Simulation::release(SimClient& c, const std::string& name) {
  c.locks.erase(name);
  note(absl::StrFormat("client %d: Release %s", c.index, name));
  rpc(c, [session = c.session, name](core::Core& core) { core.release(session, name, [](absl::Status) {}); });
}

void Simulation::campaign(SimClient& c, const std::string& election) {
  if (c.candidacies.count(election) || c.campaigning.count(election)) return;
  c.campaigning.insert(election);
  c.resigned.erase(election);
  const std::string session = c.session;
  const bool rejoin = world_.chance(0.5);
  if (rejoin) {
    c.rejoins.insert(election);
  } else {
    c.rejoins.erase(election);
  }
  call<core::ElectionStatus>(
      c, 3ms, "Campaign",
      [session, election, rejoin](core::Core& core, core::Reply<core::ElectionStatus> reply) {
        return core.campaign(session, election, "", rejoin, std::move(reply));
      },
      [this, &c, election, session](const absl::StatusOr<core::ElectionStatus>& r) {
        if (c.session != session) return;
        c.campaigning.erase(election);
        if (!r.ok()) return;
        c.candidacies.insert(election);
        if (r->status != CandidateStatus::kPrimary) return;
        note(absl::StrFormat("client %d: Campaign %s PRIMARY term %d", c.index, election, r->term));
        if (!c.primary.count(election)) ++result_.primaryships;
        c.primary[election] = Hold{r->term, c.resync};
        check();
      },
      [this, &c, election] {
        // What its events said no longer counts: the library's handle is
        // gone, and it resigns what the call may have made.
        c.campaigning.erase(election);
        c.resigned.insert(election);
        c.primary.erase(election);
        note(absl::StrFormat("client %d: Resign %s (campaign outcome unknown)", c.index, election));
        rpc(c,
            [session = c.session, election](core::Core& core) { core.resign(session, election, [](absl::Status) {}); });
      });
}

void Simulation::resign(SimClient& c, const std::string& election) {
  c.primary.erase(election);
  c.candidacies.erase(election);
  c.resigned.insert(election);
  note(absl::StrFormat("client %d: Resign %s", c.index, election));
  rpc(c, [session = c.session, election](core::Core& core) { core.resign(session, election, [](absl::Status) {}); });
}

// I1: a client that believes it holds a lock writes to the fenced resource.
void Simulation::write(SimClient& c) {
  const Clock::time_point now = world_.now();
  for (const auto& [name, hold] : c.locks) {
    if (!c.holds(name, now)) continue;
    int64_t& highest = resource_[name];
    if (hold.token < highest) {
      if (c.unsafe)
        violate(absl::StrFormat("I1: the resource accepted token %d on %s after %d (client %d)", hold.token, name,
                                highest, c.index));
      continue;  // fenced: refused
    }
    highest = hold.token;
    ++result_.writes;
  }
}

void Simulation::closeSession(SimClient& c) {
  note(absl::StrFormat("client %d: Close", c.index));
  const std::string session = c.session;
  lostSession(c);
  rpc(c, [session](core::Core& core) { core.closeSession(session, [](absl::Status) {}); });
}

void Simulation::act(SimClient& c) {
  if (c.session.empty()) return open(c);
  if (c.stream == 0) return attach(c);
  const std::string& name = kLocks[world_.uniform(0, static_cast<int64_t>(kLocks.size()) - 1)];
  const std::string& election = kElections[world_.uniform(0, static_cast<int64_t>(kElections.size()) - 1)];
  const int64_t roll = world_.uniform(0, 99);
  if (roll < 25) {
    tryAcquire(c, name);
  } else if (roll < 37) {
    acquire(c, name, std::chrono::milliseconds(world_.uniform(10, 3000)));
  } else if (roll < 52) {
    if (c.locks.count(name) && !c.unsafe) release(c, name);
    if (c.unsafe && c.locks.count(name) && world_.chance(0.2)) release(c, name);
  } else if (roll < 75) {
    write(c);
  } else if (roll < 85) {
    campaign(c, election);
  } else if (roll < 90) {
    // A candidacy exists for its client once Campaign has answered.
    if (!c.campaigning.count(election)) resign(c, election);
  } else if (roll < 92) {
    closeSession(c);
  }
}

void Simulation::scheduleAct(SimClient& c) {
  c.strand.postAt(world_.now() + std::chrono::milliseconds(world_.uniform(1, 200)), [this, &c] {
    if (!chaos_) return;
    act(c);
    check();
    scheduleAct(c);
  });
}

// --- The run ------------------------------------------------------------

void Simulation::runUntil(Clock::time_point until) {
  while (!result_.violation && world_.step(until)) check();
}

void Simulation::heal() {
  chaos_ = false;
  loss_ = 0;
  // What is under way ends by itself: every disconnection and freeze lasts
  // 5 s at most.
  note("faults stop");
}

// L6: what a daemon holds for a session, its client knows of (no grant left
// to a caller that gave up, no candidacy nobody withdrew), and no call is
// left that nobody will end. Once everything under way has settled.
void Simulation::checkKnown() {
  for (auto& c : clients_) {
    if (c->session.empty()) continue;
    core::Core& core = *c->daemon->core;
    for (const auto& name : kLocks) {
      auto state = core.check(c->session, name);
      if (!state.ok() || (state->state != LockState::kHeld && state->state != LockState::kSuspended)) continue;
      // An admin's force release may have failed: revoke() made its client forget it all the same.
      if (revoked_.count({name, state->token})) continue;
      auto mine = c->locks.find(name);
      if ((mine == c->locks.end() || mine->second.token != state->token) && !c->acquiring.count(name)) {
        violate(absl::StrFormat("L6: daemon %d holds %s (token %d) for client %d, which does not know it",
                                c->daemon->index, name, state->token, c->index));
      }
    }
    for (const auto& election : kElections) {
      auto status = core.status(c->session, election);
      if (!status.ok() || status->status == CandidateStatus::kNotCandidate ||
          status->status == CandidateStatus::kTerminated) {
        continue;
      }
      if (!c->candidacies.count(election) && !c->campaigning.count(election)) {
        violate(absl::StrFormat("L6: client %d is %s in %s on daemon %d, and does not know it", c->index,
                                core::candidateStatusName(status->status), election, c->daemon->index));
      }
    }
  }
  for (auto& c : clients_) {
    if (!c->acquiring.empty() || !c->campaigning.empty()) {
      violate(absl::StrFormat("L6: client %d still awaits %d lock and %d campaign answers", c->index,
                              c->acquiring.size(), c->campaigning.size()));
    }
  }
  for (auto& d : daemons_) {
    const core::DaemonStatus status = d->core->daemonStatus();
    if (status.calls_pending != 0 || status.lock_waiters != 0) {
      violate(absl::StrFormat("L6: daemon %d has %d lock or campaign calls and %d waiters that nobody will end",
                              d->index, status.calls_pending, status.lock_waiters));
    }
  }
}

// Every client lets go of everything, as a task would at its end.
void Simulation::letGo() {
  for (auto& c : clients_) {
    c->strand.post([this, c = c.get()] {
      if (!c->session.empty()) closeSession(*c);
      c->locks.clear();
      c->primary.clear();
    });
  }
}

void Simulation::checkLiveness() {
  for (auto& d : daemons_) {
    auto status = d->core->daemonStatus();
    if (status.link != LinkState::kConnected || !status.ready) {
      violate(absl::StrFormat("L1: daemon %d not serving once every fault was over (link %s)", d->index,
                              backend::linkStateName(status.link)));
    }
  }
  if (result_.violation) return;
  // New clients, one per daemon, each asks for every lock and stands in
  // every election.
  std::vector<std::unique_ptr<SimClient>> probes;
  auto got = std::make_shared<std::map<std::string, int>>();
  for (auto& d : daemons_) {
    auto c = std::make_unique<SimClient>(world_);
    c->index = static_cast<int>(clients_.size() + probes.size());
    c->probe = true;
    c->daemon = d.get();
    SimClient* raw = c.get();
    probes.push_back(std::move(c));
    open(*raw);
  }
  // Once their sessions are open (they are, a moment later: nothing fails
  // any more).
  world_.at(world_.now() + 500ms, [this, &probes, got] {
    for (auto& p : probes) {
      SimClient* raw = p.get();
      if (raw->session.empty()) continue;
      const std::string session = raw->session;
      rpc(*raw, [this, session, got](core::Core& core) {
        for (const auto& name : kLocks) {
          core.acquire(session, name, std::chrono::milliseconds(4 * kSessionTimeoutMs),
                       [this, session, name, got, core = &core](absl::StatusOr<int64_t> r) {
                         if (!r.ok()) {
                           return note(absl::StrFormat("probe on session %s: Acquire %s: %s", session.substr(0, 8),
                                                       name, r.status().ToString()));
                         }
                         ++(*got)[name];
                         core->release(session, name, [](absl::Status) {});
                       });
        }
        for (const auto& election : kElections) {
          core.campaign(session, election, "", true, [](absl::StatusOr<core::ElectionStatus>) {});
        }
      });
    }
  });
  runUntil(world_.now() + std::chrono::milliseconds(5 * kSessionTimeoutMs));
  if (result_.violation) return;
  const backend::recipes::Layout layout("/replicante");
  for (const auto& name : kLocks) {
    if ((*got)[name] != static_cast<int>(probes.size())) {
      // What is in the way, as the keeper has it.
      if (auto node = keeper_->peek(layout.lock(name))) {
        note(absl::StrFormat("%s: lock node czxid %d of session 0x%x", name, node->stat.czxid,
                             node->stat.ephemeral_owner));
      }
      if (auto queue = keeper_->peek(layout.waiterQueue(name))) {
        for (const auto& child : queue->children) {
          auto waiter = keeper_->peek(layout.waiterQueue(name) + "/" + child);
          note(
              absl::StrFormat("%s: waiter %s of session 0x%x", name, child, waiter ? waiter->stat.ephemeral_owner : 0));
        }
      }
      violate(absl::StrFormat("L2: %s taken by %d of %d new blocking acquires within %d s", name, (*got)[name],
                              probes.size(), 4 * kSessionTimeoutMs / 1000));
    }
  }
  for (const auto& election : kElections) {
    int primaries = 0;
    for (auto& p : probes) {
      auto status = p->daemon->core->status(p->session, election);
      if (status.ok() && status->status == CandidateStatus::kPrimary) ++primaries;
    }
    if (primaries != 1) {
      violate(absl::StrFormat("L3: %s has %d primaries among %d candidates once the faults stopped", election,
                              primaries, probes.size()));
    }
  }
  for (auto& p : probes) {
    if (!p->session.empty() && world_.now() >= p->valid_until) {
      violate(absl::StrFormat("L5: client %d's lease ran out with no fault (pinged every %d ms, lease until %s)",
                              p->index, p->pingInterval().count(), ms(p->valid_until)));
    }
    clients_.push_back(std::move(p));
  }
}

SeedResult Simulation::run() {
  // A Release that crosses an admin's force release and the next holder's
  // create deletes that holder's node (ZooKeeper deletes by version only;
  // RELIABILITY.md). Counted, and still checked: that holder's watch must
  // tell it LOST before anyone else is granted the lock.
  std::map<std::string, std::string> lock_names;  // node path -> lock
  for (const auto& name : kLocks) lock_names[backend::recipes::Layout("/replicante").lock(name)] = name;
  keeper_->onRemoved([this, lock_names](int64_t session, const std::string& path, const backend::keeper::Stat& stat) {
    auto it = lock_names.find(path);
    if (it == lock_names.end() || stat.ephemeral_owner == session || revoked_.count({it->second, stat.czxid})) return;
    ++result_.faults["a release deleted the next holder's node"];
    note(absl::StrFormat("0x%x deleted %s of 0x%x (token %d): a release crossed a force release", session, it->second,
                         stat.ephemeral_owner, stat.czxid));
  });
  for (int i = 0; i < options_.daemons; ++i) startDaemon(i);
  for (int i = 0; i < options_.clients; ++i) {
    auto c = std::make_unique<SimClient>(world_);
    c->index = i;
    c->daemon = daemons_[i % daemons_.size()].get();
    c->unsafe = options_.unsafe && i < 2;
    scheduleAct(*c);
    clients_.push_back(std::move(c));
  }
  const Clock::time_point start = world_.now();
  // Faults at random moments, about every 250 ms.
  std::function<void()> faults = [&] {
    if (!chaos_) return;
    injectFault();
    world_.at(world_.now() + std::chrono::milliseconds(world_.uniform(1, 500)), faults);
  };
  world_.at(start + std::chrono::milliseconds(world_.uniform(1, 500)), faults);
  runUntil(start + options_.chaos);
  if (!result_.violation) {
    heal();
    // Past every fault (the longest lasts 5 s) and the session timeout.
    runUntil(world_.now() + 6s + std::chrono::milliseconds(3 * kSessionTimeoutMs));
    if (!result_.violation) checkKnown();
    if (!result_.violation) {
      letGo();
      checkLiveness();
    }
  }
  result_.steps = world_.steps();
  // Stop in the daemon's order: the backends close their sessions (answering
  // what waits), then the cores go; nothing posted runs any more.
  for (auto& d : daemons_) d->backend->stop();
  for (auto& d : daemons_) d->core.reset();
  for (auto& d : daemons_) d->backend.reset();
  return result_;
}

}  // namespace

SeedResult runSeed(uint64_t seed, const SimOptions& options) { return Simulation(seed, options).run(); }

}  // namespace coordd::sim
