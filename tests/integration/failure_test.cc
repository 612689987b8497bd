// ZooKeeper failures seen through coordd: restarts, outages, ensemble members.
#include <signal.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <mutex>
#include <thread>

#include "cluster.h"

using namespace coordd::e2e;

namespace {

// Every state a lock guard went through, in order.
struct StateLog {
  void add(const std::string& state) {
    std::lock_guard<std::mutex> lock(mu);
    if (states.empty() || states.back() != state) states.push_back(state);
  }
  std::vector<std::string> snapshot() {
    std::lock_guard<std::mutex> lock(mu);
    return states;
  }
  // Options that record every state of a lock here.
  coordd::LockOptions lockOptions() {
    coordd::LockOptions options;
    options.on_change = [this](coordd::LockState state, absl::string_view) {
      add(std::string(coordd::toString(state)));
    };
    return options;
  }
  bool saw(const std::string& state) {
    auto s = snapshot();
    return std::find(s.begin(), s.end(), state) != s.end();
  }
  std::mutex mu;
  std::vector<std::string> states;
};

}  // namespace

TEST_CASE("ZooKeeper restart within the session timeout - SUSPENDED then RESTORED and nothing LOST",
          "[zookeeper][failure]") {
  ZooKeeper zk;
  auto daemon = zkDaemon(zk.address() + "/replicante", "10s");
  std::unique_ptr<coordd::Client> client;
  auto session = openSession(*daemon, client, "survivor");
  StateLog lock_states, election_states;
  auto got = session->tryLock("job", lock_states.lockOptions());
  REQUIRE(got.ok());
  REQUIRE(got->acquired());
  const int64_t token = got->guard->token();
  coordd::CampaignOptions campaign_options;
  campaign_options.on_change = [&](const coordd::ElectionState& state) {
    election_states.add(std::string(coordd::toString(state.status)));
  };
  auto election = session->campaign("svc", "", campaign_options);
  REQUIRE(election.ok());
  REQUIRE((*election)->isPrimary());
  const int64_t term = (*election)->term();

  int64_t killed_at = monotonicMicros();
  zk.kill();
  // Both are in doubt at once: neither may be acted on.
  REQUIRE(eventually([&] { return got->guard->state() == coordd::LockState::kSuspended && !(*election)->isPrimary(); },
                     10s));
  std::printf("[measure] zookeeper: SUSPENDED reported %.1f ms after ZooKeeper was killed\n",
              static_cast<double>(monotonicMicros() - killed_at) / 1000.0);
  zk.start();
  REQUIRE(eventually([&] { return got->guard->held() && (*election)->isPrimary(); }, 15s));
  std::printf("[measure] zookeeper: RESTORED %.1f ms after ZooKeeper was killed (restart included)\n",
              static_cast<double>(monotonicMicros() - killed_at) / 1000.0);
  CHECK(got->guard->token() == token);
  CHECK((*election)->term() == term);
  CHECK_FALSE(lock_states.saw("lost"));
  CHECK(lock_states.saw("suspended"));
  CHECK_FALSE(election_states.saw("terminated"));
}

TEST_CASE(
    "ZooKeeper down past the session timeout - LOST by coordd's own timer - then a new session and a rejoined "
    "candidacy",
    "[zookeeper][failure]") {
  ZooKeeper zk;
  auto daemon = zkDaemon(zk.address() + "/replicante", "2s");
  std::unique_ptr<coordd::Client> client;
  auto session = openSession(*daemon, client, "patient");
  auto got = session->tryLock("job");
  REQUIRE(got.ok());
  REQUIRE(got->acquired());
  auto election = session->campaign("svc", "");
  REQUIRE(election.ok());
  REQUIRE((*election)->isPrimary());
  const int64_t term = (*election)->term();
  const std::string old_session = daemon->coordctl({"status", "--json"}).out;

  int64_t killed_at = monotonicMicros();
  zk.kill();
  REQUIRE(eventually([&] { return got->guard->state() == coordd::LockState::kSuspended; }, 10s));
  REQUIRE(eventually([&] { return got->guard->state() == coordd::LockState::kLost; }, 10s));
  double lost_ms = static_cast<double>(monotonicMicros() - killed_at) / 1000.0;
  std::printf(
      "[measure] zookeeper: lock LOST by coordd's own timer %.1f ms after ZooKeeper went away (timeout 2000 ms)\n",
      lost_ms);
  REQUIRE(eventually([&] { return (*election)->status() == coordd::ElectionStatus::kTerminated; }, 5s));

  zk.start();
  // The daemon opens a new session and registers the candidacy again.
  REQUIRE(eventually([&] { return (*election)->isPrimary(); }, 20s));
  CHECK((*election)->term() > term);
  auto status = daemon->coordctl({"status", "--json"});
  CHECK(status.code == 0);
  CHECK(status.out != old_session);
  // The lock is free for whoever asks next, with a larger token.
  auto again = session->tryLock("job");
  REQUIRE(again.ok());
  REQUIRE(again->acquired());
  CHECK(again->guard->token() > got->guard->token());
}

TEST_CASE(
    "a daemon frozen past the session timeout - its client reads SUSPENDED before another daemon grants the lock - "
    "LOST after it resumes and never HELD in between",
    "[zookeeper][failure]") {
  ZooKeeper zk;
  auto frozen = zkDaemon(zk.address() + "/replicante", "2s");
  auto other = zkDaemon(zk.address() + "/replicante", "2s");
  std::unique_ptr<coordd::Client> client_a, client_b;
  auto a = openSession(*frozen, client_a, "frozen-side");
  auto b = openSession(*other, client_b, "other-side");
  auto got = a->tryLock("job");
  REQUIRE(got.ok());
  REQUIRE(got->acquired());
  coordd::LockGuard& guard = *got->guard;

  // What the application on a's side would see, checked every millisecond.
  std::atomic<int64_t> stopped_reading_held{0};
  std::atomic<bool> held_again{false};
  std::atomic<bool> done{false};
  std::thread watcher([&] {
    while (!done) {
      const bool held = guard.held();
      if (!held && stopped_reading_held == 0) stopped_reading_held = monotonicMicros();
      if (held && stopped_reading_held != 0) held_again = true;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  });
  StopAndJoin stop_watcher(done, watcher);
  std::atomic<int64_t> granted_at{0};
  int64_t b_token = 0;
  std::thread waiter([&] {
    auto lock = b->lock("job", absl::Seconds(20));
    granted_at = monotonicMicros();
    if (lock.ok()) b_token = lock->token();
  });

  const int64_t frozen_at = monotonicMicros();
  frozen->process().signal(SIGSTOP);
  waiter.join();
  REQUIRE(granted_at != 0);
  REQUIRE(b_token > guard.token());
  const int64_t suspended_at = stopped_reading_held;
  REQUIRE(suspended_at != 0);
  std::printf(
      "[measure] frozen daemon: its client read SUSPENDED %.1f ms after the freeze; the lock went to the other "
      "daemon %.1f ms after the freeze (margin %.1f ms)\n",
      static_cast<double>(suspended_at - frozen_at) / 1000.0, static_cast<double>(granted_at - frozen_at) / 1000.0,
      static_cast<double>(granted_at - suspended_at) / 1000.0);
  CHECK(suspended_at < granted_at);

  frozen->process().signal(SIGCONT);
  REQUIRE(eventually([&] { return guard.state() == coordd::LockState::kLost; }, 10s));
  CHECK_FALSE(held_again);
}

TEST_CASE("3-node ensemble - kill -9 the leader then a follower - locks and primaries survive",
          "[zookeeper][failure]") {
  auto servers = ZooKeeper::ensemble(3);
  auto daemon = zkDaemon(ZooKeeper::connectString(servers, "/replicante"), "10s");
  std::unique_ptr<coordd::Client> client;
  auto session = openSession(*daemon, client, "steady");
  StateLog lock_states;
  auto got = session->tryLock("job", lock_states.lockOptions());
  REQUIRE(got.ok());
  REQUIRE(got->acquired());
  auto election = session->campaign("svc", "");
  REQUIRE(election.ok());
  REQUIRE((*election)->isPrimary());
  int64_t last_token = got->guard->token();

  for (const std::string role : {"leader", "follower"}) {
    auto victim =
        std::find_if(servers.begin(), servers.end(), [&](auto& s) { return s->running() && s->mode() == role; });
    REQUIRE(victim != servers.end());
    int64_t killed_at = monotonicMicros();
    (*victim)->kill();
    // Work goes on: a new lock can be taken, with a larger token.
    std::string name = "after-" + role;
    std::optional<absl::StatusOr<coordd::TryLockResult>> next;
    REQUIRE(eventually(
        [&] {
          next = session->tryLock(name);
          return next->ok() && (*next)->acquired();
        },
        20s));
    std::printf("[measure] zookeeper: ensemble %s killed - new lock taken %.1f ms later\n", role.c_str(),
                static_cast<double>(monotonicMicros() - killed_at) / 1000.0);
    CHECK((*next)->guard->token() > last_token);
    last_token = (*next)->guard->token();
    REQUIRE(eventually([&] { return got->guard->held() && (*election)->isPrimary(); }, 20s));
    (*victim)->start();
  }
  CHECK_FALSE(lock_states.saw("lost"));
}

TEST_CASE("ZooKeeper unreachable at start - coordd starts not ready and answers UNAVAILABLE until it comes up",
          "[zookeeper][failure]") {
  ZooKeeper zk;
  zk.kill();
  Daemon daemon({"--zookeeper", zk.address() + "/replicante", "--session-timeout", "2s"}, Daemon::Wait::kListening);
  auto status = daemon.coordctl({"status", "--json"});
  CHECK(status.code == 1);
  CHECK(status.out.find("\"ready\":false") != std::string::npos);
  auto refused = daemon.coordctl({"lock", "job", "--", "true"});
  CHECK(refused.code == 1);
  CHECK(refused.err.find("UNAVAILABLE") != std::string::npos);

  zk.start();
  REQUIRE(eventually([&] { return daemon.coordctl({"status"}).code == 0; }, 20s));
  CHECK(daemon.coordctl({"lock", "job", "--", "true"}).code == 0);
}

TEST_CASE("a release while ZooKeeper is away leaves no orphan - the node goes once the session is back",
          "[zookeeper][failure]") {
  ZooKeeper zk;
  auto d1 = zkDaemon(zk.address() + "/replicante", "10s");
  auto d2 = zkDaemon(zk.address() + "/replicante", "10s");
  std::unique_ptr<coordd::Client> client;
  auto session = openSession(*d1, client, "releaser");
  auto got = session->tryLock("job");
  REQUIRE(got.ok());
  REQUIRE(got->acquired());

  zk.kill();
  REQUIRE(eventually([&] { return got->guard->state() == coordd::LockState::kSuspended; }, 10s));
  // The delete cannot reach ZooKeeper now: the node stays, owned by d1's
  // session and claimed by nobody.
  CHECK(got->guard->release().ok());
  zk.start();
  int64_t back_at = monotonicMicros();
  REQUIRE(eventually([&] { return d2->coordctl({"lock", "job", "--", "true"}).code == 0; }, 15s));
  std::printf("[measure] zookeeper: orphaned lock node removed %.1f ms after ZooKeeper came back\n",
              static_cast<double>(monotonicMicros() - back_at) / 1000.0);
}

TEST_CASE("admin through any daemon - a force release via another daemon makes the holder LOST", "[zookeeper]") {
  ZooKeeper zk;
  auto d1 = zkDaemon(zk.address() + "/replicante");
  auto d2 = zkDaemon(zk.address() + "/replicante");
  auto holder = d1->startCoordctl({"lock", "job", "--grace", "1s", "--", "sleep", "30"});
  REQUIRE(eventually([&] { return d2->coordctl({"locks", "list"}).out.find("coordctl-lock") != std::string::npos; }));
  CHECK(d2->coordctl({"locks", "release", "job"}).code == 0);
  auto code = holder->wait(10s);
  REQUIRE(code.has_value());
  CHECK(*code == 76);
}

TEST_CASE("a session with 1500 locks rides out a ZooKeeper restart - its stream is not overwhelmed",
          "[zookeeper][failure]") {
  ZooKeeper zk;
  auto daemon = std::make_unique<Daemon>(std::vector<std::string>{
      "--zookeeper", zk.address() + "/replicante", "--session-timeout", "10s", "--max-holds-per-session", "2000"});
  std::unique_ptr<coordd::Client> client;
  auto session = openSession(*daemon, client, "many");
  std::vector<coordd::LockGuard> guards;
  for (int i = 0; i < 1500; ++i) {
    auto got = session->tryLock("job-" + std::to_string(i));
    REQUIRE(got.ok());
    REQUIRE(got->acquired());
    guards.push_back(std::move(*got->guard));
  }
  const auto held = [&](bool want) {
    return std::all_of(guards.begin(), guards.end(), [&](const coordd::LockGuard& g) { return g.held() == want; });
  };
  zk.kill();
  // One suspension for all 1500 at once: an event per lock was a burst past
  // the stream's queue bound, and the daemon ended the stream.
  REQUIRE(eventually([&] { return held(false); }, 10s));
  zk.start();
  REQUIRE(eventually([&] { return held(true); }, 30s));
  CHECK_FALSE(session->ended());
}
