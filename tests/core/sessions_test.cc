#include <catch2/catch.hpp>

#include "harness.h"

using namespace coordd;
using namespace coordd::testing;

namespace {}  // namespace

TEST_CASE("closing a session releases its locks before the reply", "[sessions]") {
  Daemon d(newKeeper());
  auto a = d.open();
  auto b = d.open();
  REQUIRE(d.tryAcquire(a, "job")->acquired);
  REQUIRE(d.close(a).ok());
  CHECK(d.tryAcquire(b, "job")->acquired);
  CHECK(a.events->closed());
  // Later calls on the ended session name why it ended.
  auto late = d.core.check(a.id, "job");
  CHECK(absl::IsFailedPrecondition(late.status()));
  CHECK(late.status().message().find("closed by client") != std::string::npos);
}

TEST_CASE("a broken KeepAlive stream of a client whose processes are gone frees its locks at once", "[sessions]") {
  Daemon d(newKeeper());
  auto processes = std::make_shared<TestProcesses>();
  auto a = d.open("test", 10s, processes);
  auto b = d.open();
  REQUIRE(d.tryAcquire(a, "job")->acquired);
  processes->exit();
  d.core.detachStream(a.id, a.events.get());
  // Not a ttl later: the session is over already.
  auto late = d.core.check(a.id, "job");
  CHECK(absl::IsFailedPrecondition(late.status()));
  CHECK(late.status().message().find("client gone") != std::string::npos);
  REQUIRE(eventually([&] { return d.tryAcquire(b, "job")->acquired; }));
}

TEST_CASE("a broken KeepAlive stream of a live client frees nothing until its processes exit", "[sessions]") {
  Daemon d(newKeeper());
  auto processes = std::make_shared<TestProcesses>();
  auto a = d.open("test", 10s, processes);
  auto b = d.open();
  REQUIRE(d.tryAcquire(a, "job")->acquired);
  // The daemon dropped a slow reader, or the connection broke on one side:
  // the client may still act on its lease.
  d.core.detachStream(a.id, a.events.get());
  CHECK_FALSE(d.tryAcquire(b, "job")->acquired);
  std::this_thread::sleep_for(200ms);  // several sweeps
  CHECK_FALSE(d.tryAcquire(b, "job")->acquired);
  CHECK(d.core.check(a.id, "job")->state == core::LockState::kHeld);
  processes->exit();
  REQUIRE(eventually([&] { return d.tryAcquire(b, "job")->acquired; }));
}

TEST_CASE("a broken KeepAlive stream of a client the daemon cannot watch frees its locks after the ttl", "[sessions]") {
  Daemon d(newKeeper());
  auto a = d.open("tcp-peer", 1000ms);
  auto b = d.open();
  REQUIRE(d.tryAcquire(a, "job")->acquired);
  d.core.detachStream(a.id, a.events.get());
  CHECK_FALSE(d.tryAcquire(b, "job")->acquired);
  REQUIRE(eventually([&] { return !d.core.check(a.id, "job").ok(); }));
  CHECK(d.core.check(a.id, "job").status().message().find("ttl expired") != std::string::npos);
  CHECK(d.tryAcquire(b, "job")->acquired);
}

TEST_CASE("a session without pings ends after its ttl", "[sessions]") {
  Daemon d(newKeeper());
  auto a = d.open("hung", 1000ms);
  auto b = d.open();
  REQUIRE(d.tryAcquire(a, "job")->acquired);
  auto ended = a.events->waitFor([](const core::Event& e) { return e.kind == core::Event::Kind::kEnded; }, 3000ms);
  REQUIRE(ended);
  CHECK(ended->reason.find("ttl expired") != std::string::npos);
  CHECK(d.tryAcquire(b, "job")->acquired);
}

TEST_CASE("pings keep a session alive past its ttl", "[sessions]") {
  Daemon d(newKeeper());
  auto a = d.open("alive", 1000ms);
  for (int i = 0; i < 8; ++i) {
    std::this_thread::sleep_for(200ms);
    REQUIRE(d.core.ping(a.id).ok());
  }
  CHECK(d.core.check(a.id, "x").ok());
}

TEST_CASE("the daemon sends heartbeats at least every W/3", "[sessions]") {
  Daemon d(newKeeper());
  auto a = d.open("hb", 1200ms);
  // The first heartbeat comes when the stream binds; then one every 400 ms.
  for (int i = 0; i < 3; ++i) {
    auto heartbeat =
        a.events->waitFor([](const core::Event& e) { return e.kind == core::Event::Kind::kHeartbeat; }, 700ms);
    REQUIRE(heartbeat);
    CHECK(heartbeat->window == 1200ms);
    REQUIRE(d.core.ping(a.id).ok());
  }
}

TEST_CASE(
    "every ping is answered at once with a heartbeat echoing it with the lease and its margin - none while "
    "suspended",
    "[sessions]") {
  Daemon d(newKeeper());
  auto a = d.open("leased", 3000ms);
  auto echo = [&](uint64_t ping_id) {
    return a.events->waitFor(
        [&](const core::Event& e) { return e.kind == core::Event::Kind::kHeartbeat && e.ping_id == ping_id; }, 200ms);
  };
  std::this_thread::sleep_for(10ms);  // pings are answered at most every 5 ms
  REQUIRE(d.core.ping(a.id, 7).ok());
  auto heartbeat = echo(7);
  REQUIRE(heartbeat);
  // Nothing outside the process can end the embedded coordinator's session:
  // the ttl alone bounds the lease, two thirds of it, and the margin, the
  // rest: nobody else can have what the session holds before the ttl is up.
  CHECK(heartbeat->lease == 2000ms);
  CHECK(heartbeat->margin == 1000ms);

  d.suspend();
  d.waitLink(backend::LinkState::kSuspended);
  std::this_thread::sleep_for(10ms);
  REQUIRE(d.core.ping(a.id, 8).ok());
  heartbeat = echo(8);
  REQUIRE(heartbeat);
  CHECK(heartbeat->link == backend::LinkState::kSuspended);
  CHECK(heartbeat->lease == 0ms);
  CHECK(heartbeat->margin == 0ms);
}

TEST_CASE("a flood of pings is answered at most every 5 ms - the periodic heartbeat echoes the latest", "[sessions]") {
  Daemon d(newKeeper());
  auto a = d.open("flood", 1200ms);
  for (uint64_t id = 1; id <= 1000; ++id) REQUIRE(d.core.ping(a.id, id).ok());
  // The periodic heartbeat (every W/3 = 400 ms) carries the last ping.
  auto last = a.events->waitFor(
      [](const core::Event& e) { return e.kind == core::Event::Kind::kHeartbeat && e.ping_id == 1000; }, 1000ms);
  REQUIRE(last);
  CHECK(a.events->count([](const core::Event& e) { return e.kind == core::Event::Kind::kHeartbeat; }) < 100);
}

TEST_CASE("a ping repeating the id of one just answered is answered by the next sweep - not the periodic heartbeat",
          "[sessions]") {
  Daemon d(newKeeper());
  auto a = d.open("repeats", 30s);  // the periodic heartbeat: every 10 s
  auto echo = [&] {
    return a.events->waitFor(
        [](const core::Event& e) { return e.kind == core::Event::Kind::kHeartbeat && e.ping_id == 7; }, 2000ms);
  };
  REQUIRE(d.core.ping(a.id, 7).ok());
  REQUIRE(echo());
  // Within 5 ms of that answer: not answered at once, but soon.
  REQUIRE(d.core.ping(a.id, 7).ok());
  CHECK(echo());
}

TEST_CASE("one KeepAlive stream per session", "[sessions]") {
  Daemon d(newKeeper());
  auto a = d.open();
  CHECK(absl::IsAlreadyExists(d.core.attachStream(a.id, std::make_shared<RecordingSink>())));
  CHECK(absl::IsNotFound(d.core.attachStream("0123456789abcdef", std::make_shared<RecordingSink>())));
}

TEST_CASE("session and hold limits answer RESOURCE_EXHAUSTED and change nothing", "[sessions][limits]") {
  core::Limits limits;
  limits.max_sessions = 2;
  limits.max_holds_per_session = 2;
  Daemon d(newKeeper(), limits);
  auto a = d.open();
  d.open();
  auto third = d.core.openSession("third", 0ms, {});
  CHECK(absl::IsResourceExhausted(third.status()));
  CHECK(third.status().message().find("limits.max_sessions") != std::string::npos);

  REQUIRE(d.tryAcquire(a, "one")->acquired);
  REQUIRE(d.campaign(a, "two").ok());
  auto over = d.tryAcquire(a, "three");
  CHECK(absl::IsResourceExhausted(over.status()));
  CHECK(over.status().message().find("limits.max_holds_per_session") != std::string::npos);
  CHECK(d.core.daemonStatus().locks_held == 1);
  CHECK(d.core.daemonStatus().candidacies == 1);
}

TEST_CASE("shutdown ends every session and releases everything in the coordinator", "[sessions]") {
  auto store = newKeeper();
  Daemon other(store);
  auto watcher = other.open();
  std::optional<Daemon::Client> a;
  {
    auto d = std::make_unique<Daemon>(store);
    a = d->open();
    REQUIRE(d->tryAcquire(*a, "job")->acquired);
    REQUIRE(d->campaign(*a, "svc")->status == core::CandidateStatus::kPrimary);
    REQUIRE(other.campaign(watcher, "svc")->status == core::CandidateStatus::kSecondary);
    d->core.shutdown("daemon shutting down", absl::Seconds(2));
    auto ended = a->events->waitFor([](const core::Event& e) { return e.kind == core::Event::Kind::kEnded; });
    REQUIRE(ended);
    CHECK(ended->reason == "daemon shutting down");
    // Released in the coordinator before the backend closes: no expiry needed.
    CHECK(other.tryAcquire(watcher, "job")->acquired);
    REQUIRE(watcher.events->waitElection("svc", core::CandidateStatus::kPrimary));
    CHECK(absl::IsUnavailable(d->core.openSession("late", 0ms, {}).status()));
  }
}

TEST_CASE("owner records show only the public part of a session id - it cannot act for the session", "[sessions]") {
  Daemon d(newKeeper());
  auto a = d.open("victim");
  auto b = d.open("other");
  REQUIRE(d.tryAcquire(a, "job")->acquired);
  auto seen = d.tryAcquire(b, "job");
  REQUIRE(seen.ok());
  REQUIRE(seen->holder.has_value());
  const std::string public_id = seen->holder->owner.session_id;
  CHECK(public_id.size() == 16);
  CHECK(public_id != a.id);
  CHECK(absl::IsNotFound(d.close(Daemon::Client{public_id, nullptr})));
  CHECK(absl::IsNotFound(d.release(Daemon::Client{public_id, nullptr}, "job")));
  CHECK(d.core.check(a.id, "job")->state == core::LockState::kHeld);
}

TEST_CASE("observer streams are limited", "[sessions][limits]") {
  core::Limits limits;
  limits.max_observers = 1;
  Daemon d(newKeeper(), limits);
  struct Quiet : core::LeaderObserver {
    void onLeader(const std::optional<backend::Candidate>&) override {}
    void onClosed(const std::string&) override {}
  };
  auto first = d.core.addObserver("svc", std::make_shared<Quiet>());
  REQUIRE(first.ok());
  auto second = d.core.addObserver("svc", std::make_shared<Quiet>());
  CHECK(absl::IsResourceExhausted(second.status()));
  CHECK(second.status().message().find("limits.max_observers") != std::string::npos);
  d.core.removeObserver(*first);
  CHECK(d.core.addObserver("svc", std::make_shared<Quiet>()).ok());
}
