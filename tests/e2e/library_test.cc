// The C++ client library against the real daemon.
#include <catch2/catch.hpp>

#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>

#include "absl/strings/str_cat.h"
#include "coordd/admin.h"
#include "coordd/client.h"
#include "coordd/primary_loop.h"
#include "harness.h"
#include "open_session.h"
#include "relay.h"

using namespace coordd::e2e;

TEST_CASE("library: tryLock guard / holder record / release on destruction", "[e2e][library]") {
  Daemon daemon;
  auto client = coordd::Client::connect(daemon.address()).value();
  auto a = open(*client, "alpha", absl::Seconds(3));
  auto b = open(*client, "beta", absl::Seconds(3));
  int64_t token = 0;
  {
    auto got = a->tryLock("job");
    REQUIRE(got.ok());
    REQUIRE(got->acquired());
    CHECK(got->guard->held());
    token = got->guard->token();
    auto other = b->tryLock("job");
    REQUIRE(other.ok());
    CHECK_FALSE(other->acquired());
    CHECK(other->holder.owner == "alpha");
    CHECK(other->holder.session_id == a->id().substr(0, 16));  // the public part only
  }
  auto after = b->tryLock("job");
  REQUIRE(after.ok());
  REQUIRE(after->acquired());
  CHECK(after->guard->token() > token);
}

namespace {

// A daemon, alpha's session through a relay that can hold the daemon's
// answers, and beta's straight on the daemon's socket.
struct RelayedDaemon {
  Daemon daemon;
  UnixRelay relay{daemon.dir().file("relay.sock"), daemon.dir().file("coordd.sock")};
  std::unique_ptr<coordd::Client> relayed = coordd::Client::connect(relay.address()).value();
  std::unique_ptr<coordd::Client> direct = coordd::Client::connect(daemon.address()).value();
  std::unique_ptr<coordd::Session> a = open(*relayed, "alpha", absl::Seconds(3));
  std::unique_ptr<coordd::Session> b = open(*direct, "beta", absl::Seconds(3));
};

}  // namespace

TEST_CASE("library: a lock and a candidacy whose answers never came are given back - no hold is left unknown",
          "[e2e][library]") {
  RelayedDaemon world;
  // The daemon grants both calls and answers; the answers stay in the relay
  // past the library's own deadline. Alpha's pings still arrive: its
  // session lives on. Once the daemon has carried out the give-back (beta
  // gets what alpha was granted), its answer is let through.
  std::unique_ptr<coordd::Election> election;
  std::atomic<bool> done{false};
  const auto poll = [&done](const std::function<bool()>& condition) {
    while (!done.load()) {
      if (condition()) return true;
      std::this_thread::sleep_for(20ms);
    }
    return false;
  };
  const auto job_holder = [&]() -> std::string {
    auto info = world.direct->admin().lockInfo("job");
    return info.ok() && info->held() ? info->holder().owner() : "";
  };
  std::thread unholder([&] {
    if (!poll([&] { return job_holder() == "alpha"; }) || !poll([&] { return job_holder().empty(); })) return;
    world.relay.holdReplies(false);
    // Alpha's candidacy is registered before beta's, then given back.
    if (!poll([&] {
          auto leader = world.direct->leader("svc");
          return leader.ok() && leader->has_value() && (*leader)->owner.owner == "alpha";
        })) {
      return;
    }
    auto campaign = world.b->campaign("svc", "beta");
    if (!campaign.ok()) return;
    election = std::move(*campaign);
    if (poll([&] { return election->isPrimary(); })) world.relay.holdReplies(false);
  });
  StopAndJoin stop(done, unholder);
  world.relay.holdReplies(true);
  auto lock = world.a->tryLock("job");
  CHECK(absl::IsDeadlineExceeded(lock.status()));
  world.relay.holdReplies(true);
  auto candidacy = world.a->campaign("svc", "alpha");
  CHECK(absl::IsDeadlineExceeded(candidacy.status()));
  done = true;
  unholder.join();
  // Alpha knew of no hold, and none stayed: beta gets both.
  std::optional<coordd::LockGuard> guard;
  CHECK(eventually([&] {
    auto got = world.b->tryLock("job");
    if (got.ok() && got->acquired()) guard = std::move(got->guard);
    return guard.has_value();
  }));
  REQUIRE(election != nullptr);
  CHECK(election->isPrimary());
  // Both give-backs were answered: alpha may ask again.
  auto again = world.a->tryLock("job");
  REQUIRE(again.ok());
  CHECK_FALSE(again->acquired());
  CHECK(again->holder.owner == "beta");
  CHECK_FALSE(world.a->ended());
}

TEST_CASE("library: a call whose give-back is lost too leaves its name unusable - never a second Release in flight",
          "[e2e][library]") {
  RelayedDaemon world;
  // Every answer to alpha, the give-back's too, stays in the world.relay.
  world.relay.holdReplies(true);
  CHECK(absl::IsDeadlineExceeded(world.a->tryLock("job").status()));
  world.relay.holdReplies(false);
  // The daemon carried out the give-back, but alpha cannot know it: asking
  // again would let that Release meet the new grant.
  std::optional<coordd::LockGuard> guard;
  CHECK(eventually([&] {
    auto got = world.b->tryLock("job");
    if (got.ok() && got->acquired()) guard = std::move(got->guard);
    return guard.has_value();
  }));
  auto again = world.a->tryLock("job");
  CHECK(absl::IsUnavailable(again.status()));
  CHECK_THAT(std::string(again.status().message()), Catch::Contains("open a new session"));
  // Other names are not affected.
  auto other = world.a->tryLock("other");
  REQUIRE(other.ok());
  CHECK(other->acquired());
}

TEST_CASE("library: held() turns false when an admin force-releases the lock", "[e2e][library]") {
  Daemon daemon;
  auto client = coordd::Client::connect(daemon.address()).value();
  auto a = open(*client, "alpha", absl::Seconds(3));
  auto got = a->tryLock("job");
  REQUIRE(got.ok());
  REQUIRE(got->acquired());
  REQUIRE(daemon.coordctl({"locks", "release", "job"}).code == 0);
  CHECK(eventually([&] { return got->guard->state() == coordd::LockState::kLost; }));
  CHECK_FALSE(got->guard->held());
}

TEST_CASE("library: a lock's callback may close its own session", "[e2e][library]") {
  Daemon daemon;
  auto client = coordd::Client::connect(daemon.address()).value();
  auto a = open(*client, "alpha", absl::Seconds(3));
  coordd::Session* session = a.get();
  std::atomic<bool> closed{false};
  coordd::LockOptions options;
  options.on_change = [&](coordd::LockState state, absl::string_view) {
    if (state != coordd::LockState::kLost || closed.exchange(true)) return;
    CHECK(session->close().ok());  // on the session's own event thread
  };
  auto got = a->tryLock("job", options);
  REQUIRE(got.ok());
  REQUIRE(got->acquired());
  auto also_held = a->tryLock("other");
  REQUIRE(also_held.ok());
  REQUIRE(also_held->acquired());
  REQUIRE(daemon.coordctl({"locks", "release", "job"}).code == 0);
  REQUIRE(eventually([&] { return closed.load() && a->ended(); }));
  CHECK(absl::IsFailedPrecondition(a->tryLock("third").status()));
  // Closed in the daemon too: what it still held is free for others.
  auto b = open(*client, "beta", absl::Seconds(3));
  REQUIRE(eventually([&] {
    auto other = b->tryLock("other");
    return other.ok() && other->acquired();
  }));
}

TEST_CASE("library: election handles follow primaryship - the change callback fires", "[e2e][library]") {
  Daemon daemon;
  auto client = coordd::Client::connect(daemon.address()).value();
  auto a = open(*client, "alpha", absl::Seconds(3));
  auto b = open(*client, "beta", absl::Seconds(3));
  auto first = a->campaign("svc", "a:1");
  REQUIRE(first.ok());
  CHECK((*first)->isPrimary());
  std::atomic<int> changes{0};
  coordd::CampaignOptions options;
  options.on_change = [&](const coordd::ElectionState&) { ++changes; };
  auto second = b->campaign("svc", "b:1", options);
  REQUIRE(second.ok());
  CHECK_FALSE((*second)->isPrimary());

  auto leader = client->leader("svc");
  REQUIRE(leader.ok());
  REQUIRE(leader->has_value());
  CHECK((*leader)->value == "a:1");
  int64_t first_term = (*first)->term();

  REQUIRE((*first)->resign().ok());
  REQUIRE(eventually([&] { return (*second)->isPrimary(); }));
  CHECK((*second)->term() > first_term);
  // The callback runs after the state is published, outside the session's lock.
  CHECK(eventually([&] { return changes.load() >= 1; }));
  auto checked = (*second)->checkStatus();
  REQUIRE(checked.ok());
  CHECK(checked->status == coordd::ElectionStatus::kPrimary);
}

TEST_CASE("library: late events of a resigned candidacy do not reach the next one in the same election",
          "[e2e][library]") {
  Daemon daemon;
  auto client = coordd::Client::connect(daemon.address()).value();
  auto a = open(*client, "alpha");
  // A lock's callback holds alpha's event thread: what the daemon sends
  // meanwhile waits, as on a slow reader.
  std::mutex mu;
  std::condition_variable cv;
  bool blocked = false;
  bool unblock = false;
  coordd::LockOptions options;
  options.on_change = [&](coordd::LockState state, absl::string_view) {
    if (state != coordd::LockState::kLost) return;
    std::unique_lock<std::mutex> lock(mu);
    blocked = true;
    cv.notify_all();
    cv.wait(lock, [&] { return unblock; });
  };
  auto blocker = a->tryLock("blocker", options);
  REQUIRE(blocker.ok());
  REQUIRE(blocker->acquired());
  coordd::CampaignOptions once;
  once.rejoin = false;
  auto first = a->campaign("svc", "a:1", once);
  REQUIRE(first.ok());
  REQUIRE((*first)->isPrimary());
  REQUIRE(daemon.coordctl({"locks", "release", "blocker"}).code == 0);
  {
    std::unique_lock<std::mutex> lock(mu);
    REQUIRE(cv.wait_for(lock, std::chrono::seconds(5), [&] { return blocked; }));
  }
  // The first candidacy is stepped down (TERMINATED, not yet read) and
  // resigned; a second one is PRIMARY.
  REQUIRE(daemon.coordctl({"elections", "step-down", "svc"}).code == 0);
  REQUIRE((*first)->resign().ok());
  std::vector<coordd::ElectionStatus> seen;
  coordd::CampaignOptions watched;
  watched.on_change = [&](const coordd::ElectionState& state) { seen.push_back(state.status); };
  auto second = a->campaign("svc", "a:2", watched);
  REQUIRE(second.ok());
  REQUIRE((*second)->isPrimary());
  {
    std::lock_guard<std::mutex> lock(mu);
    unblock = true;
  }
  cv.notify_all();
  // A later event, read after the held ones: they have all been applied.
  std::atomic<bool> marker_lost{false};
  coordd::LockOptions marked;
  marked.on_change = [&](coordd::LockState state, absl::string_view) {
    if (state == coordd::LockState::kLost) marker_lost = true;
  };
  auto marker = a->tryLock("marker", marked);
  REQUIRE(marker.ok());
  REQUIRE(marker->acquired());
  REQUIRE(daemon.coordctl({"locks", "release", "marker"}).code == 0);
  REQUIRE(eventually([&] { return marker_lost.load(); }));
  CHECK(seen.empty());  // the first candidacy's TERMINATED was not the second's
  CHECK((*second)->isPrimary());
}

TEST_CASE("library: observe streams leader changes", "[e2e][library]") {
  Daemon daemon;
  auto client = coordd::Client::connect(daemon.address()).value();
  std::mutex mu;
  std::vector<std::string> seen;
  auto observer = client->observe("svc", [&](const std::optional<coordd::LeaderInfo>& leader) {
    std::lock_guard<std::mutex> lock(mu);
    seen.push_back(leader ? leader->value : "-");
  });
  REQUIRE(observer.ok());
  auto snapshot = [&] {
    std::lock_guard<std::mutex> lock(mu);
    return seen;
  };
  REQUIRE(eventually([&] { return snapshot().size() == 1; }));
  auto a = open(*client, "alpha", absl::Seconds(3));
  auto election = a->campaign("svc", "a:1");
  REQUIRE(election.ok());
  REQUIRE(eventually([&] { return snapshot().size() == 2; }));
  REQUIRE((*election)->resign().ok());
  REQUIRE(eventually([&] { return snapshot().size() == 3; }));
  CHECK(snapshot() == std::vector<std::string>{"-", "a:1", "-"});
}

TEST_CASE("library: the primary loop runs only while primary and hands over every N runs", "[e2e][library]") {
  Daemon daemon;
  auto client = coordd::Client::connect(daemon.address()).value();
  auto a = open(*client, "alpha", absl::Seconds(3));
  auto b = open(*client, "beta", absl::Seconds(3));
  std::mutex mu;
  std::vector<std::pair<std::string, int64_t>> runs;  // who, term
  std::atomic<bool> stop{false};
  auto loop = [&](coordd::Session& session, const std::string& who) {
    coordd::PrimaryLoopOptions options;
    options.election = "looping";
    options.interval = absl::Milliseconds(20);
    options.step_down_every = 3;
    return coordd::runPrimaryLoop(
        session, options,
        [&](int64_t term) {
          std::lock_guard<std::mutex> lock(mu);
          runs.emplace_back(who, term);
        },
        stop);
  };
  absl::Status status_a, status_b;
  std::thread ta([&] { status_a = loop(*a, "a"); });
  std::thread tb([&] { status_b = loop(*b, "b"); });
  bool both_ran = eventually(
      [&] {
        std::lock_guard<std::mutex> lock(mu);
        return std::count_if(runs.begin(), runs.end(), [](const auto& r) { return r.first == "a"; }) >= 3 &&
               std::count_if(runs.begin(), runs.end(), [](const auto& r) { return r.first == "b"; }) >= 3;
      },
      10s);
  stop = true;
  ta.join();
  tb.join();
  CHECK(both_ran);
  CHECK(status_a.ok());
  CHECK(status_b.ok());
  // Terms never go back, and a term belongs to one primary only.
  std::map<int64_t, std::string> owner_of_term;
  int64_t last = 0;
  for (const auto& [who, term] : runs) {
    CHECK(term >= last);
    last = term;
    auto [it, inserted] = owner_of_term.emplace(term, who);
    CHECK(it->second == who);
  }
  CHECK(owner_of_term.size() >= 2);
}

TEST_CASE("library: a lock and a candidacy taken right after open read HELD and PRIMARY at once", "[e2e][library]") {
  // open() returns on the first heartbeat; what is taken right after it must
  // not read as answered during the silence before that heartbeat. Two
  // spinning threads keep both cores busy, as a loaded CI machine does: the
  // race needed the event thread preempted at the wrong moment.
  Daemon daemon;
  auto client = coordd::Client::connect(daemon.address()).value();
  std::atomic<bool> done{false};
  std::thread spinners[2];
  std::optional<StopAndJoin> stop[2];
  for (int i = 0; i < 2; ++i) {
    spinners[i] = std::thread([&done] {
      while (!done.load(std::memory_order_relaxed)) {
      }
    });
    stop[i].emplace(done, spinners[i]);
  }
  int suspended = 0;
  for (int i = 0; i < 200; ++i) {
    auto session = open(*client, "eager");
    auto lock = session->tryLock(absl::StrCat("job-", i));
    REQUIRE(lock.ok());
    REQUIRE(lock->acquired());
    auto election = session->campaign(absl::StrCat("svc-", i), "");
    REQUIRE(election.ok());
    if (!lock->guard->held() || !(*election)->isPrimary()) ++suspended;
    REQUIRE(session->close().ok());
  }
  CHECK(suspended == 0);
}
