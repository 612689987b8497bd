#include <atomic>
#include <catch2/catch.hpp>

#include "harness.h"

using namespace coordd;
using namespace coordd::testing;
using core::CandidateStatus;

namespace {

struct LeaderLog : core::LeaderObserver {
  void onLeader(const std::optional<backend::Candidate>& leader) override {
    std::lock_guard<std::mutex> lock(mu);
    seen.push_back(leader ? leader->owner.label : "");
  }
  void onClosed(const std::string&) override {}
  std::vector<std::string> snapshot() {
    std::lock_guard<std::mutex> lock(mu);
    return seen;
  }
  std::mutex mu;
  std::vector<std::string> seen;
};
}  // namespace

TEST_CASE("one primary - on resign the next candidate takes over with a higher term", "[elections]") {
  auto store = newKeeper();
  Daemon d1(store);
  Daemon d2(store);
  auto a = d1.open("a");
  auto b = d2.open("b");

  auto first = d1.campaign(a, "svc");
  REQUIRE(first.ok());
  CHECK(first->status == CandidateStatus::kPrimary);
  CHECK(first->term > 0);
  auto second = d2.campaign(b, "svc");
  REQUIRE(second.ok());
  CHECK(second->status == CandidateStatus::kSecondary);
  CHECK(second->term == 0);
  CHECK(absl::IsAlreadyExists(d2.campaign(b, "svc").status()));

  REQUIRE(d1.resign(a, "svc").ok());
  auto promoted = b.events->waitElection("svc", CandidateStatus::kPrimary);
  REQUIRE(promoted);
  CHECK(promoted->token > first->term);
  auto status = d2.core.status(b.id, "svc");
  CHECK(status->status == CandidateStatus::kPrimary);
  CHECK(status->term == promoted->token);
  CHECK(d1.core.status(a.id, "svc")->status == CandidateStatus::kNotCandidate);
}

TEST_CASE("suspend makes the primary SUSPENDED - reconnect restores PRIMARY", "[elections][link]") {
  Daemon d(newKeeper());
  auto a = d.open();
  auto term = d.campaign(a, "svc")->term;
  d.suspend();
  REQUIRE(a.events->waitLinkSuspended());
  auto status = d.core.status(a.id, "svc");
  CHECK(status->status == CandidateStatus::kSuspended);
  d.reconnect();
  auto restored = a.events->waitElection("svc", CandidateStatus::kPrimary);
  REQUIRE(restored);
  CHECK(restored->token == term);
  CHECK(d.core.status(a.id, "svc")->status == CandidateStatus::kPrimary);
}

TEST_CASE("expiry TERMINATES candidacies - rejoin re-registers them / others stay out", "[elections][link]") {
  auto store = newKeeper();
  Daemon d1(store);
  Daemon d2(store);
  auto rejoiner = d1.open("rejoiner");
  auto quitter = d1.open("quitter");
  auto other = d2.open("other");
  auto old_term = d1.campaign(rejoiner, "svc", true)->term;
  REQUIRE(d1.campaign(quitter, "svc2", false)->status == CandidateStatus::kPrimary);
  REQUIRE(d2.campaign(other, "svc")->status == CandidateStatus::kSecondary);

  d1.expire();
  auto terminated = rejoiner.events->waitElection("svc", CandidateStatus::kTerminated);
  REQUIRE(terminated);
  CHECK(terminated->reason == "coordinator session expired");
  REQUIRE(quitter.events->waitElection("svc2", CandidateStatus::kTerminated));

  // The other daemon's candidate took over, with a higher term.
  auto promoted = other.events->waitElection("svc", CandidateStatus::kPrimary);
  REQUIRE(promoted);
  CHECK(promoted->token > old_term);
  // The rejoining candidacy is back, behind it.
  REQUIRE(rejoiner.events->waitElection("svc", CandidateStatus::kSecondary));
  CHECK(d1.core.status(rejoiner.id, "svc")->status == CandidateStatus::kSecondary);
  // The other one stays terminated, with its reason, and may campaign anew.
  auto quit = d1.core.status(quitter.id, "svc2");
  CHECK(quit->status == CandidateStatus::kTerminated);
  CHECK(quit->reason == "coordinator session expired");
  CHECK(d1.campaign(quitter, "svc2", false)->status == CandidateStatus::kPrimary);
}

TEST_CASE("an admin step-down moves primaryship on - the old primary rejoins behind", "[elections]") {
  auto store = newKeeper();
  Daemon d1(store);
  Daemon d2(store);
  auto a = d1.open("a");
  auto b = d2.open("b");
  auto term = d1.campaign(a, "svc")->term;
  REQUIRE(d2.campaign(b, "svc")->status == CandidateStatus::kSecondary);
  auto previous = await<backend::Candidate>([&](auto cb) { d2.backend.stepDown("svc", cb); });
  REQUIRE(previous.ok());
  CHECK(previous->owner.label == "a");
  REQUIRE(a.events->waitElection("svc", CandidateStatus::kTerminated));
  auto promoted = b.events->waitElection("svc", CandidateStatus::kPrimary);
  REQUIRE(promoted);
  CHECK(promoted->token > term);
  REQUIRE(a.events->waitElection("svc", CandidateStatus::kSecondary));
}

TEST_CASE("without rejoin a stepped-down primary stays out until it campaigns again", "[elections]") {
  auto store = newKeeper();
  Daemon d1(store);
  Daemon d2(store);
  auto a = d1.open("a");
  auto b = d2.open("b");
  REQUIRE(d1.campaign(a, "svc", /*rejoin=*/false)->status == CandidateStatus::kPrimary);
  REQUIRE(d2.campaign(b, "svc")->status == CandidateStatus::kSecondary);
  REQUIRE(await<backend::Candidate>([&](auto cb) { d2.backend.stepDown("svc", cb); }).ok());
  REQUIRE(a.events->waitElection("svc", CandidateStatus::kTerminated));
  REQUIRE(b.events->waitElection("svc", CandidateStatus::kPrimary));
  auto view = await<backend::ElectionView>([&](auto cb) { d1.backend.electionInfo("svc", cb); });
  REQUIRE(view.ok());
  CHECK(view->candidates.size() == 1);  // b alone
  CHECK(d1.core.status(a.id, "svc")->status == CandidateStatus::kTerminated);
  // Campaigning again replaces the ended candidacy.
  CHECK(d1.campaign(a, "svc", false)->status == CandidateStatus::kSecondary);
}

TEST_CASE("a candidate stepped down and its path taken anew elsewhere before its watch is set is not PRIMARY",
          "[elections]") {
  // Between a candidate's create and the exists that sets its watch, an
  // admin steps it down, the emptied election node goes, and another
  // daemon's candidate gets the same path in the election made anew (ABA).
  auto store = newKeeper();
  Daemon d2(store);
  auto b = d2.open("b");
  const std::string dir = backend::recipes::Layout("").election("svc");
  auto raw = store->open([](std::function<void()> task) { task(); }, [](backend::keeper::SessionState) {});
  auto armed = std::make_shared<std::atomic<bool>>(true);
  bool stepped_down = false;
  bool emptied = false;
  std::optional<core::ElectionStatus> next;
  Daemon d1(store, faultyBackend(store, [&, armed](const std::string& op, const std::string& path) {
              if (op == "exists" && path.rfind(dir + "/", 0) == 0 && armed->exchange(false)) {
                // On d1's backend thread; d2 has its own.
                stepped_down = await<backend::Candidate>([&](auto cb) { d2.backend.stepDown("svc", cb); }).ok();
                raw->remove(dir, -1,
                            [&](const backend::keeper::Result& r) { emptied = r.code == backend::keeper::Code::kOk; });
                if (auto status = d2.campaign(b, "svc"); status.ok()) next = *status;
              }
              return backend::keeper::FaultyKeeper::Fault::kNone;
            }));
  auto a = d1.open("a");
  auto first = d1.campaign(a, "svc", /*rejoin=*/false);
  REQUIRE(stepped_down);
  REQUIRE(emptied);
  REQUIRE(next);
  REQUIRE(next->status == CandidateStatus::kPrimary);  // b's node has a's old path
  // a was stepped down before it could be told anything: never PRIMARY.
  CHECK_FALSE((first.ok() && first->status == CandidateStatus::kPrimary));
  CHECK(d1.core.status(a.id, "svc")->status != CandidateStatus::kPrimary);
  CHECK(d2.core.status(b.id, "svc")->status == CandidateStatus::kPrimary);
}

TEST_CASE("a daemon whose cleaner registration failed stands again within its session", "[elections][cleaner]") {
  // Its first registration in the cleaner's election loses its answer, and
  // no reconnect follows (which would also make it stand again).
  auto store = newKeeper();
  auto armed = std::make_shared<std::atomic<bool>>(true);
  const std::string dir = backend::recipes::Layout("").election("zookeeper-cleaner");
  backend::recipes::KeeperOptions options = backend::memory::embeddedOptions(store);
  options.cleaner_interval = absl::Milliseconds(50);
  options.open_session =
      [store, armed, dir](
          backend::keeper::Keeper::Post post,
          backend::keeper::Keeper::SessionWatch watch) -> absl::StatusOr<std::unique_ptr<backend::keeper::Keeper>> {
    return std::make_unique<backend::keeper::FaultyKeeper>(
        store->open(post, std::move(watch)), post, [armed, dir](const std::string& op, const std::string& path) {
          const bool cleaner = op == "create" && path.rfind(dir, 0) == 0;
          return cleaner && armed->exchange(false) ? backend::keeper::FaultyKeeper::Fault::kLoseBeforeApplied
                                                   : backend::keeper::FaultyKeeper::Fault::kNone;
        });
  };
  Daemon d(store, std::make_unique<backend::recipes::KeeperBackend>(std::move(options)));
  d.backend.registerMember(backend::Member{"node-1", {}, "test", absl::Now()});
  REQUIRE(eventually([&] { return !armed->load(); }));  // the registration lost its answer
  CHECK(eventually([&] {
    auto view = await<backend::ElectionView>([&](auto cb) { d.backend.electionInfo("zookeeper-cleaner", cb); });
    return view.ok() && view->candidates.size() == 1;
  }));
}

TEST_CASE("ending a session withdraws its candidacies at once", "[elections][sessions]") {
  Daemon d(newKeeper());
  auto a = d.open("a");
  auto b = d.open("b");
  REQUIRE(d.campaign(a, "svc")->status == CandidateStatus::kPrimary);
  REQUIRE(d.campaign(b, "svc")->status == CandidateStatus::kSecondary);
  REQUIRE(d.close(a).ok());
  REQUIRE(b.events->waitElection("svc", CandidateStatus::kPrimary));
}

TEST_CASE("observers see every leader change / starting with the current one", "[elections]") {
  Daemon d(newKeeper());
  auto a = d.open("a");
  auto b = d.open("b");
  REQUIRE(d.campaign(a, "svc").ok());
  auto log = std::make_shared<LeaderLog>();
  auto id = d.core.addObserver("svc", log);
  REQUIRE(id.ok());
  REQUIRE(eventually([&] { return log->snapshot().size() == 1; }));
  REQUIRE(d.campaign(b, "svc").ok());
  REQUIRE(d.resign(a, "svc").ok());
  REQUIRE(d.resign(b, "svc").ok());
  REQUIRE(eventually([&] { return log->snapshot().size() == 3; }));
  CHECK(log->snapshot() == std::vector<std::string>{"a", "b", ""});
  d.core.removeObserver(*id);
}

TEST_CASE("the value is published with the candidacy", "[elections]") {
  Daemon d(newKeeper());
  auto a = d.open("a");
  REQUIRE(d.campaign(a, "svc", true, "10.0.0.7:8080").ok());
  auto leader = await<std::optional<backend::Candidate>>([&](auto cb) { d.backend.leader("svc", cb); });
  REQUIRE(leader.ok());
  REQUIRE(leader->has_value());
  CHECK((*leader)->value == "10.0.0.7:8080");
  CHECK((*leader)->owner.attributes.at("role") == "test");
}

TEST_CASE("a step-down whose read is lost answers UNAVAILABLE, not that there is no primary", "[elections][admin]") {
  auto keeper = newKeeper();
  const std::string dir = backend::recipes::Layout("").election("svc");
  auto lose = std::make_shared<std::atomic<bool>>(false);
  Daemon d(keeper, faultyBackend(keeper, [dir, lose](const std::string& op, const std::string& path) {
             if (op == "children" && path == dir && lose->exchange(false)) {
               return backend::keeper::FaultyKeeper::Fault::kLoseBeforeApplied;
             }
             return backend::keeper::FaultyKeeper::Fault::kNone;
           }));
  auto a = d.open("a");
  REQUIRE(d.campaign(a, "svc")->status == CandidateStatus::kPrimary);
  lose->store(true);
  auto stepped = await<backend::Candidate>([&](auto cb) { d.backend.stepDown("svc", cb); });
  CHECK(absl::IsUnavailable(stepped.status()));
  // Asked again, it finds the primary.
  auto again = await<backend::Candidate>([&](auto cb) { d.backend.stepDown("svc", cb); });
  REQUIRE(again.ok());
  CHECK(again->owner.label == "a");
}
