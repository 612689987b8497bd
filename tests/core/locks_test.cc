#include <atomic>
#include <set>
#include <catch2/catch.hpp>
#include <thread>

#include "harness.h"

using namespace coordd;
using namespace coordd::testing;
using core::LockState;

namespace {}  // namespace

TEST_CASE("tryAcquire excludes other sessions and reports the holder", "[locks]") {
  Daemon d(newKeeper());
  auto a = d.open("alpha");
  auto b = d.open("beta");

  auto first = d.tryAcquire(a, "job");
  REQUIRE(first.ok());
  REQUIRE(first->acquired);
  REQUIRE(first->token > 0);

  auto second = d.tryAcquire(b, "job");
  REQUIRE(second.ok());
  REQUIRE_FALSE(second->acquired);
  REQUIRE(second->holder.has_value());
  CHECK(second->holder->owner.label == "alpha");
  CHECK(second->holder->owner.session_id == a.id.substr(0, 16));  // public part only
  CHECK(second->holder->token == first->token);

  auto check = d.core.check(a.id, "job");
  REQUIRE(check.ok());
  CHECK(check->state == LockState::kHeld);
  CHECK(check->token == first->token);
  CHECK(d.core.check(b.id, "job")->state == LockState::kNotHeld);
}

TEST_CASE("a TryAcquire of a lock held through the same daemon is answered there - no coordinator call", "[locks]") {
  auto store = newKeeper();
  const std::string lock_path = backend::recipes::Layout("").lock("job");
  auto creates = std::make_shared<std::atomic<int>>(0);
  Daemon d(store, faultyBackend(store, [=](const std::string& op, const std::string& path) {
             if (op == "create" && path == lock_path) ++*creates;
             return backend::keeper::FaultyKeeper::Fault::kNone;
           }));
  auto a = d.open("alpha");
  auto b = d.open("beta");
  auto held = d.tryAcquire(a, "job");
  REQUIRE(held->acquired);
  *creates = 0;  // the first made the lock's parent too
  auto refused = d.tryAcquire(b, "job");
  REQUIRE(refused.ok());
  CHECK_FALSE(refused->acquired);
  REQUIRE(refused->holder.has_value());
  CHECK(refused->holder->owner.label == "alpha");
  CHECK(refused->holder->token == held->token);
  CHECK(*creates == 0);
  // Released, it is the coordinator's to answer again.
  REQUIRE(d.release(a, "job").ok());
  CHECK(d.tryAcquire(b, "job")->acquired);
  CHECK(*creates == 1);
}

TEST_CASE("TryAcquires asked while another session's is in flight wait for it - one create for all", "[locks]") {
  // The first attempt's create is held up in the backend; the others come
  // meanwhile. Granted, it is the holder they are told of; refused, they go
  // on their own.
  auto store = newKeeper();
  const std::string lock_path = backend::recipes::Layout("").lock("job");
  auto creates = std::make_shared<std::atomic<int>>(0);
  auto gate = std::make_shared<std::promise<void>>();
  auto open = gate->get_future().share();
  Daemon d(store, faultyBackend(store, [=](const std::string& op, const std::string& path) {
             if (op == "create" && path == lock_path && ++*creates == 1) open.wait();
             return backend::keeper::FaultyKeeper::Fault::kNone;
           }));
  Daemon other(store);
  auto rival = other.open("rival");
  bool rival_holds = false;
  SECTION("the first gets it") {
    REQUIRE(other.tryAcquire(rival, "job")->acquired);  // makes the lock's parent
    REQUIRE(other.release(rival, "job").ok());
  }
  SECTION("another daemon holds it") {
    REQUIRE(other.tryAcquire(rival, "job")->acquired);
    rival_holds = true;
  }
  auto first = d.open("first");
  std::promise<absl::StatusOr<core::TryAcquireResult>> first_reply;
  d.core.tryAcquire(first.id, "job", [&](absl::StatusOr<core::TryAcquireResult> r) { first_reply.set_value(r); });
  REQUIRE(eventually([&] { return *creates == 1; }));  // in the backend, held up
  std::vector<Daemon::Client> later;
  std::vector<std::promise<absl::StatusOr<core::TryAcquireResult>>> replies(3);
  for (size_t i = 0; i < replies.size(); ++i) {
    later.push_back(d.open("later"));
    d.core.tryAcquire(later[i].id, "job",
                      [&replies, i](absl::StatusOr<core::TryAcquireResult> r) { replies[i].set_value(r); });
  }
  gate->set_value();
  auto got = first_reply.get_future().get();
  REQUIRE(got.ok());
  CHECK(got->acquired == !rival_holds);
  for (auto& reply : replies) {
    auto answer = reply.get_future().get();
    REQUIRE(answer.ok());
    CHECK_FALSE(answer->acquired);
    REQUIRE(answer->holder.has_value());
    CHECK(answer->holder->owner.label == (rival_holds ? "rival" : "first"));
  }
  // Granted: one create for all four. Refused: each went on its own.
  CHECK(*creates == (rival_holds ? 4 : 1));
}

TEST_CASE("a TryAcquire of a lock that changes hands at every look answers not acquired - not an error", "[locks]") {
  // Each create finds the lock taken and each read of its holder finds it
  // freed again: it was held at every try.
  auto store = newKeeper();
  const std::string lock_path = backend::recipes::Layout("").lock("job");
  std::shared_ptr<backend::keeper::Keeper> rival =
      store->open([](std::function<void()> task) { task(); }, [](backend::keeper::SessionState) {});
  const auto take = [rival, lock_path] {
    rival->create(lock_path, "", backend::keeper::CreateMode::kEphemeral, [](const backend::keeper::Result&) {});
  };
  for (size_t slash = lock_path.find('/', 1); slash != std::string::npos; slash = lock_path.find('/', slash + 1)) {
    rival->create(lock_path.substr(0, slash), "", backend::keeper::CreateMode::kPersistent,
                  [](const backend::keeper::Result&) {});
  }
  take();
  REQUIRE(store->peek(lock_path));
  Daemon d(store, faultyBackend(store, [=](const std::string& op, const std::string& path) {
             if (path == lock_path && op == "create" && !store->peek(lock_path)) take();
             if (path == lock_path && op == "get") rival->remove(lock_path, -1, [](const backend::keeper::Result&) {});
             return backend::keeper::FaultyKeeper::Fault::kNone;
           }));
  auto a = d.open();
  auto result = d.tryAcquire(a, "job");
  REQUIRE(result.ok());
  CHECK_FALSE(result->acquired);
  CHECK_FALSE(result->holder.has_value());
}

TEST_CASE("a lock is not re-entrant: the same session gets ALREADY_EXISTS", "[locks]") {
  Daemon d(newKeeper());
  auto a = d.open();
  REQUIRE(d.tryAcquire(a, "job")->acquired);
  CHECK(absl::IsAlreadyExists(d.tryAcquire(a, "job").status()));
  CHECK(absl::IsAlreadyExists(d.acquire(a, "job", 100ms).status()));
}

TEST_CASE("fencing tokens strictly increase across successive holders and daemons", "[locks]") {
  auto store = newKeeper();
  Daemon d1(store);
  Daemon d2(store);
  auto a = d1.open();
  auto b = d2.open();
  int64_t last = 0;
  for (int i = 0; i < 20; ++i) {
    auto& daemon = i % 2 == 0 ? d1 : d2;
    auto& client = i % 2 == 0 ? a : b;
    auto got = daemon.tryAcquire(client, "fenced");
    REQUIRE(got.ok());
    REQUIRE(got->acquired);
    CHECK(got->token > last);
    last = got->token;
    REQUIRE(daemon.release(client, "fenced").ok());
  }
}

TEST_CASE("release frees the lock - releasing what is not held is NOT_FOUND", "[locks]") {
  Daemon d(newKeeper());
  auto a = d.open();
  auto b = d.open();
  REQUIRE(d.tryAcquire(a, "job")->acquired);
  CHECK(absl::IsNotFound(d.release(b, "job")));
  REQUIRE(d.release(a, "job").ok());
  CHECK(absl::IsNotFound(d.release(a, "job")));
  CHECK(d.tryAcquire(b, "job")->acquired);
}

TEST_CASE("blocking waiters get the lock in FIFO order", "[locks]") {
  auto store = newKeeper();
  Daemon d1(store);
  Daemon d2(store);
  auto holder = d1.open("holder");
  REQUIRE(d1.tryAcquire(holder, "queue")->acquired);

  // Waiters from two daemons, interleaved; the queue is cluster-wide.
  std::vector<Daemon*> daemons = {&d2, &d1, &d2, &d1};
  std::vector<Daemon::Client> clients;
  std::vector<std::future<absl::StatusOr<int64_t>>> replies;
  for (size_t i = 0; i < daemons.size(); ++i) {
    clients.push_back(daemons[i]->open("waiter-" + std::to_string(i)));
    replies.push_back(daemons[i]->acquireAsync(clients[i], "queue", 5000ms));
    // Each waiter is queued before the next one asks.
    REQUIRE(eventually([&] {
      auto view = await<backend::LockView>([&](auto cb) { d1.backend.lockInfo("queue", cb); });
      return view.ok() && view->waiters.size() == i + 1;
    }));
  }
  REQUIRE(d1.release(holder, "queue").ok());
  int64_t last = 0;
  for (size_t i = 0; i < daemons.size(); ++i) {
    REQUIRE(replies[i].wait_for(2s) == std::future_status::ready);
    auto token = replies[i].get();
    REQUIRE(token.ok());
    CHECK(*token > last);
    last = *token;
    // Nobody behind got it before this one released.
    for (size_t j = i + 1; j < daemons.size(); ++j) {
      CHECK(replies[j].wait_for(0ms) == std::future_status::timeout);
    }
    REQUIRE(daemons[i]->release(clients[i], "queue").ok());
  }
}

TEST_CASE("a waiter whose turn meets a lost answer keeps its FIFO place", "[locks][link]") {
  // The first waiter's turn comes; the read of its queue, or the create of
  // the lock node (applied or not), loses its answer. ZooKeeper then drops
  // the connection: the waiter goes on after the reconnect, ahead of the one
  // behind it.
  std::string lose_op;
  backend::keeper::FaultyKeeper::Fault fault = backend::keeper::FaultyKeeper::Fault::kNone;
  SECTION("the queue read") {
    lose_op = "children";
    fault = backend::keeper::FaultyKeeper::Fault::kLoseBeforeApplied;
  }
  SECTION("the lock create, not applied") {
    lose_op = "create";
    fault = backend::keeper::FaultyKeeper::Fault::kLoseBeforeApplied;
  }
  SECTION("the lock create, applied") {
    lose_op = "create";
    fault = backend::keeper::FaultyKeeper::Fault::kLoseAfterApplied;
  }
  auto store = newKeeper();
  const backend::recipes::Layout layout("");
  const std::string queue = layout.waiterQueue("job");
  const std::string lock_path = layout.lock("job");
  auto armed = std::make_shared<std::atomic<bool>>(false);
  Daemon d1(store);
  Daemon d2(store, faultyBackend(store, [=](const std::string& op, const std::string& path) {
              const bool target = op == lose_op && (op == "children" ? path == queue : path == lock_path);
              return target && armed->exchange(false) ? fault : backend::keeper::FaultyKeeper::Fault::kNone;
            }));
  auto holder = d1.open("holder");
  REQUIRE(d1.tryAcquire(holder, "job")->acquired);
  auto first = d2.open("first");
  auto second = d1.open("second");
  auto first_reply = d2.acquireAsync(first, "job", 10000ms);
  REQUIRE(eventually([&] { return store->peek(queue) && store->peek(queue)->children.size() == 1; }));
  auto second_reply = d1.acquireAsync(second, "job", 10000ms);
  REQUIRE(eventually([&] { return store->peek(queue)->children.size() == 2; }));

  armed->store(true);
  REQUIRE(d1.release(holder, "job").ok());
  REQUIRE(eventually([&] { return !armed->load(); }));  // the answer is lost
  d2.suspend();
  d2.reconnect();
  REQUIRE(first_reply.wait_for(2s) == std::future_status::ready);
  auto token = first_reply.get();
  REQUIRE(token.ok());
  CHECK(d2.core.check(first.id, "job")->state == LockState::kHeld);
  CHECK(second_reply.wait_for(0ms) == std::future_status::timeout);
  REQUIRE(d2.release(first, "job").ok());
  REQUIRE(second_reply.wait_for(2s) == std::future_status::ready);
  auto next = second_reply.get();
  REQUIRE(next.ok());
  CHECK(*next > *token);
}

TEST_CASE("a waiter granted before the watch session is back is answered once the link is known", "[locks][link]") {
  // The first session is back and the waiter's turn comes; the watch session
  // is not back yet, so the link is still SUSPENDED when the grant arrives.
  // The grant waits for the link: verified after the reconnect, it holds;
  // lost meanwhile, or gone with an expired session, the waiter is told to
  // retry and nothing is left held.
  auto store = newKeeper();
  const backend::recipes::Layout layout("");
  Daemon d1(store);
  Daemon d2(store);
  auto holder = d1.open("holder");
  REQUIRE(d1.tryAcquire(holder, "job")->acquired);
  auto waiter = d2.open("waiter");
  auto reply = d2.acquireAsync(waiter, "job", 10000ms);
  REQUIRE(eventually([&] {
    auto queue = store->peek(layout.waiterQueue("job"));
    return queue && queue->children.size() == 1;
  }));
  d2.suspend();
  d2.waitLink(backend::LinkState::kSuspended);
  REQUIRE(d1.release(holder, "job").ok());
  store->reconnect(d2.keeperSession());
  REQUIRE(eventually([&] { return store->peek(layout.waiterQueue("job"))->children.empty(); }));  // its turn came
  CHECK(reply.wait_for(50ms) == std::future_status::timeout);  // not answered while the link is in doubt
  auto other = d1.open("other");

  SECTION("the watch session comes back: it holds") {
    store->reconnect(d2.watchSession());
    REQUIRE(reply.wait_for(2s) == std::future_status::ready);
    auto token = reply.get();
    REQUIRE(token.ok());
    CHECK(d2.core.check(waiter.id, "job")->state == LockState::kHeld);
    CHECK(waiter.events->waitLock("job", LockState::kHeld).has_value());
    CHECK_FALSE(d1.tryAcquire(other, "job")->acquired);
  }
  SECTION("an admin force-releases it meanwhile: retry") {
    REQUIRE(await<backend::LockHolder>([&](auto cb) { d1.backend.forceUnlock("job", cb); }).ok());
    store->reconnect(d2.watchSession());
    REQUIRE(reply.wait_for(2s) == std::future_status::ready);
    auto token = reply.get();
    CHECK(absl::IsUnavailable(token.status()));
    CHECK(d2.core.check(waiter.id, "job")->state == LockState::kNotHeld);
    CHECK(d1.tryAcquire(other, "job")->acquired);
  }
  SECTION("the session expires meanwhile: retry") {
    store->expire(d2.keeperSession());
    REQUIRE(reply.wait_for(2s) == std::future_status::ready);
    CHECK(absl::IsUnavailable(reply.get().status()));
    CHECK(d2.core.check(waiter.id, "job")->state == LockState::kNotHeld);
    CHECK(d1.tryAcquire(other, "job")->acquired);
  }
  SECTION("the waiter gives up meanwhile: the lock is given back") {
    REQUIRE(d2.close(waiter).ok());
    REQUIRE(reply.wait_for(2s) == std::future_status::ready);
    CHECK_FALSE(reply.get().ok());
    store->reconnect(d2.watchSession());
    CHECK(eventually([&] { return d1.tryAcquire(other, "job")->acquired; }));
  }
}

TEST_CASE("a timed-out acquire leaves no waiter behind", "[locks]") {
  Daemon d(newKeeper());
  auto a = d.open();
  auto b = d.open();
  REQUIRE(d.tryAcquire(a, "slow")->acquired);
  auto started = std::chrono::steady_clock::now();
  auto result = d.acquire(b, "slow", 150ms);
  auto waited = std::chrono::steady_clock::now() - started;
  CHECK(absl::IsDeadlineExceeded(result.status()));
  CHECK(waited >= 150ms);
  auto view = await<backend::LockView>([&](auto cb) { d.backend.lockInfo("slow", cb); });
  REQUIRE(view.ok());
  CHECK(view->waiters.empty());
  // When the holder releases, the lock is free: nobody stale took it.
  REQUIRE(d.release(a, "slow").ok());
  CHECK(d.tryAcquire(a, "slow")->acquired);
  CHECK(d.core.daemonStatus().lock_waiters == 0);
}

TEST_CASE("a cancelled acquire answers DEADLINE_EXCEEDED and leaves no waiter", "[locks]") {
  Daemon d(newKeeper());
  auto a = d.open();
  auto b = d.open();
  REQUIRE(d.tryAcquire(a, "c")->acquired);
  int64_t waiter = 0;
  auto reply = d.acquireAsync(b, "c", 10000ms, &waiter);
  REQUIRE(waiter != 0);
  d.core.cancelCall(waiter);
  REQUIRE(reply.wait_for(2s) == std::future_status::ready);
  CHECK(absl::IsDeadlineExceeded(reply.get().status()));
  REQUIRE(eventually([&] {
    auto view = await<backend::LockView>([&](auto cb) { d.backend.lockInfo("c", cb); });
    return view.ok() && view->waiters.empty();
  }));
}

TEST_CASE("suspend makes a held lock SUSPENDED - reconnect RESTORES it", "[locks][link]") {
  Daemon d(newKeeper());
  auto a = d.open();
  auto token = d.tryAcquire(a, "job")->token;

  d.suspend();
  REQUIRE(a.events->waitLinkSuspended());
  auto suspended = d.core.check(a.id, "job");
  CHECK(suspended->state == LockState::kSuspended);
  CHECK(suspended->token == token);
  // New work is refused while the link is in doubt.
  CHECK(absl::IsUnavailable(d.tryAcquire(a, "other").status()));

  d.reconnect();
  REQUIRE(a.events->waitLock("job", LockState::kRestored));
  auto check = d.core.check(a.id, "job");
  CHECK(check->state == LockState::kHeld);
  CHECK(check->token == token);
}

TEST_CASE("a verification after a reconnect whose read is lost is tried again - the hold does not stay SUSPENDED",
          "[locks][elections][link]") {
  // An answer lost without a further disconnect (an operation timeout): no
  // RECONNECTED comes to start another verification.
  auto keeper = newKeeper();
  const backend::recipes::Layout layout("");
  const std::string lock_path = layout.lock("job");
  const std::string election_dir = layout.election("svc");
  auto lose = std::make_shared<std::atomic<int>>(0);
  Daemon d(keeper, faultyBackend(keeper, [=](const std::string& op, const std::string& path) {
             const bool verifying = op == "exists" && (path == lock_path || path.rfind(election_dir + "/", 0) == 0);
             if (verifying && lose->load() > 0) {
               --*lose;
               return backend::keeper::FaultyKeeper::Fault::kLoseBeforeApplied;
             }
             return backend::keeper::FaultyKeeper::Fault::kNone;
           }));
  auto a = d.open();
  auto token = d.tryAcquire(a, "job")->token;
  REQUIRE(d.campaign(a, "svc")->status == core::CandidateStatus::kPrimary);

  d.suspend();
  REQUIRE(a.events->waitLinkSuspended());
  lose->store(2);  // the lock's and the candidacy's verification reads
  d.reconnect();
  CHECK(eventually([&] {
    auto check = d.core.check(a.id, "job");
    return check.ok() && check->state == LockState::kHeld && check->token == token;
  }));
  CHECK(eventually([&] {
    auto status = d.core.status(a.id, "svc");
    return status.ok() && status->status == core::CandidateStatus::kPrimary;
  }));
  CHECK(lose->load() == 0);  // both reads were lost, and tried again
}

TEST_CASE("a lock force-released while suspended is LOST on reconnect", "[locks][link]") {
  auto store = newKeeper();
  Daemon d1(store);
  Daemon d2(store);
  auto a = d1.open();
  REQUIRE(d1.tryAcquire(a, "job")->acquired);
  d1.suspend();
  REQUIRE(a.events->waitLinkSuspended());
  REQUIRE(await<backend::LockHolder>([&](auto cb) { d2.backend.forceUnlock("job", cb); }).ok());
  d1.reconnect();
  REQUIRE(a.events->waitLock("job", LockState::kLost));
  CHECK(d1.core.check(a.id, "job")->state == LockState::kNotHeld);
}

TEST_CASE("a lock force-released and taken elsewhere before its watch is set is LOST - not HELD twice", "[locks]") {
  // Between the create and the exists that sets the holder's watch, an admin
  // frees the lock and another daemon takes it: the exists finds a node, but
  // not the holder's (ABA).
  auto store = newKeeper();
  Daemon d2(store);
  auto b = d2.open("next");
  const std::string lock_path = backend::recipes::Layout("").lock("job");
  auto armed = std::make_shared<std::atomic<bool>>(true);
  std::atomic<bool> forced{false};
  std::atomic<int64_t> next_token{0};
  Daemon d1(store, faultyBackend(store, [&, armed](const std::string& op, const std::string& path) {
              if (op == "exists" && path == lock_path && armed->exchange(false)) {
                // On d1's backend thread; d2 has its own.
                forced = await<backend::LockHolder>([&](auto cb) { d2.backend.forceUnlock("job", cb); }).ok();
                auto next = d2.tryAcquire(b, "job");
                if (next.ok() && next->acquired) next_token = next->token;
              }
              return backend::keeper::FaultyKeeper::Fault::kNone;
            }));
  auto a = d1.open("first");
  auto first = d1.tryAcquire(a, "job");
  REQUIRE(first.ok());
  REQUIRE(first->acquired);
  // The holder's watch is set after the answer.
  REQUIRE(eventually([&] { return forced.load(); }));
  REQUIRE(eventually([&] { return next_token.load() != 0; }));  // b holds it now
  CHECK(d2.core.check(b.id, "job")->state == LockState::kHeld);
  // a, granted before the admin's release, hears that it lost the lock.
  CHECK(eventually([&] { return d1.core.check(a.id, "job")->state == LockState::kNotHeld; }));
}

TEST_CASE("an admin force release makes the holder's lock LOST at once", "[locks]") {
  auto store = newKeeper();
  Daemon d1(store);
  Daemon d2(store);
  auto a = d1.open();
  auto b = d2.open();
  auto token = d1.tryAcquire(a, "job")->token;
  auto previous = await<backend::LockHolder>([&](auto cb) { d2.backend.forceUnlock("job", cb); });
  REQUIRE(previous.ok());
  CHECK(previous->token == token);
  auto lost = a.events->waitLock("job", LockState::kLost);
  REQUIRE(lost);
  CHECK(lost->reason == "lock node deleted in the embedded coordinator");
  auto next = d2.tryAcquire(b, "job");
  REQUIRE(next->acquired);
  CHECK(next->token > token);
}

TEST_CASE("expiry makes every lock LOST and frees it for others", "[locks][link]") {
  auto store = newKeeper();
  Daemon d1(store);
  Daemon d2(store);
  auto a = d1.open();
  auto b = d2.open();
  auto token = d1.tryAcquire(a, "job")->token;
  REQUIRE_FALSE(d2.tryAcquire(b, "job")->acquired);

  d1.suspend();
  REQUIRE(a.events->waitLinkSuspended());
  d1.expire();
  auto lost = a.events->waitLock("job", LockState::kLost);
  REQUIRE(lost);
  CHECK(lost->reason == "coordinator session expired");
  CHECK(d1.core.check(a.id, "job")->state == LockState::kNotHeld);
  auto taken = d2.tryAcquire(b, "job");
  REQUIRE(taken->acquired);
  CHECK(taken->token > token);
  // The expired daemon works again on its new coordinator session.
  d1.waitLink(backend::LinkState::kConnected);
  REQUIRE(d2.release(b, "job").ok());
  CHECK(d1.tryAcquire(a, "job")->acquired);
}

TEST_CASE("a waiter whose coordinator session expires gets UNAVAILABLE / not the lock", "[locks][link]") {
  auto store = newKeeper();
  Daemon d1(store);
  Daemon d2(store);
  auto holder = d2.open();
  auto waiter = d1.open();
  REQUIRE(d2.tryAcquire(holder, "job")->acquired);
  auto reply = d1.acquireAsync(waiter, "job", 5000ms);
  REQUIRE(eventually([&] { return d1.core.daemonStatus().lock_waiters == 1; }));
  d1.expire();
  REQUIRE(reply.wait_for(2s) == std::future_status::ready);
  CHECK(absl::IsUnavailable(reply.get().status()));
  REQUIRE(d2.release(holder, "job").ok());
  auto view = await<backend::LockView>([&](auto cb) { d2.backend.lockInfo("job", cb); });
  CHECK_FALSE(view->holder.has_value());
}

TEST_CASE("concurrent tryAcquire of one name by one session - one wins and the other is ALREADY_EXISTS", "[locks]") {
  Daemon d(newKeeper());
  auto a = d.open();
  std::promise<absl::StatusOr<core::TryAcquireResult>> first, second;
  d.core.tryAcquire(a.id, "job", [&](auto r) { first.set_value(r); });
  d.core.tryAcquire(a.id, "job", [&](auto r) { second.set_value(r); });
  auto r1 = first.get_future().get();
  auto r2 = second.get_future().get();
  REQUIRE(r1.ok());
  CHECK(r1->acquired);
  CHECK(absl::IsAlreadyExists(r2.status()));
}

TEST_CASE("acquires racing an expiry never leave a lock held by nobody", "[locks][link]") {
  auto store = newKeeper();
  Daemon d1(store);
  Daemon d2(store);
  auto a = d1.open();
  auto b = d2.open();
  for (int i = 0; i < 20; ++i) {
    d1.expire();
    auto r = d1.tryAcquire(a, "race");
    d1.waitLink(backend::LinkState::kConnected);
    if (r.ok() && r->acquired) {
      // Acquired on the new coordinator session: really held, then released.
      auto release = d1.release(a, "race");
      CHECK((release.ok() || absl::IsNotFound(release)));
    }
    // Whatever happened, nothing is left behind: the other daemon gets it.
    REQUIRE(eventually([&] {
      auto got = d2.tryAcquire(b, "race");
      return got.ok() && got->acquired;
    }));
    REQUIRE(d2.release(b, "race").ok());
  }
}

namespace {

// A coordinator that refuses every delete for good, as ZooKeeper does with
// ZNOAUTH for a node whose ACL changed under us.
class DeleteRefused : public backend::recipes::KeeperBackend {
 public:
  explicit DeleteRefused(const std::shared_ptr<backend::keeper::MemoryKeeper>& keeper)
      : KeeperBackend(backend::memory::embeddedOptions(keeper)) {}
  void unlock(const std::string& name, int64_t, backend::Done done) override {
    ++attempts;
    // Answered later, on a thread of its own, as every backend answers.
    replies_.post([name, done] { done(absl::PermissionDeniedError("not authorized to delete " + name)); });
  }
  std::atomic<int> attempts{0};

 private:
  backend::SerialExecutor replies_;
};

}  // namespace

TEST_CASE("a delete the coordinator refuses for good is not retried for ever", "[locks]") {
  auto keeper = newKeeper();
  auto refusing = std::make_unique<DeleteRefused>(keeper);
  DeleteRefused& backend = *refusing;
  Daemon d(keeper, std::move(refusing));
  auto a = d.open();
  REQUIRE(d.tryAcquire(a, "job")->acquired);
  REQUIRE(d.release(a, "job").ok());  // the session's record goes; the delete is refused
  // Retryable failures (the link down) are retried every sweep; this one
  // cannot succeed by retrying: it is logged and left to an operator.
  std::this_thread::sleep_for(300ms);  // six sweeps
  CHECK(backend.attempts.load() == 1);
}

TEST_CASE("a link suspension is one message per session, however many holds it has", "[locks][link]") {
  Daemon d(newKeeper());
  auto a = d.open();
  for (int i = 0; i < 1000; ++i) REQUIRE(d.tryAcquire(a, "job-" + std::to_string(i))->acquired);
  REQUIRE(d.campaign(a, "svc")->status == core::CandidateStatus::kPrimary);
  d.suspend();
  REQUIRE(a.events->waitLinkSuspended());
  // The daemon answers SUSPENDED for every hold...
  CHECK(d.core.check(a.id, "job-0")->state == LockState::kSuspended);
  CHECK(d.core.check(a.id, "job-999")->state == LockState::kSuspended);
  CHECK(d.core.status(a.id, "svc")->status == core::CandidateStatus::kSuspended);
  // ...but said so in one message: 1001 events at once would overflow the
  // stream's bounded queue and end it.
  CHECK(a.events->count([](const core::Event& e) {
    return (e.kind == core::Event::Kind::kLock && e.lock_state == LockState::kSuspended) ||
           (e.kind == core::Event::Kind::kElection && e.status == core::CandidateStatus::kSuspended);
  }) == 0);
  d.reconnect();
  REQUIRE(a.events->waitLock("job-999", LockState::kRestored));
  CHECK(d.core.check(a.id, "job-0")->state == LockState::kHeld);
}

TEST_CASE("a blocking acquire cancelled after its grant gives the lock back", "[locks]") {
  // The caller's cancel (a deadline, a disconnect) races the grant: the
  // grant is committed, its answer is on the way, and only then does the
  // service learn that nobody will read it.
  Daemon d(newKeeper());
  auto a = d.open("gave-up");
  auto b = d.open("holder");
  REQUIRE(d.tryAcquire(b, "job")->acquired);
  int64_t waiter_id = 0;
  auto answer = d.acquireAsync(a, "job", 10s, &waiter_id);
  REQUIRE(waiter_id != 0);
  REQUIRE(d.release(b, "job").ok());
  REQUIRE(answer.get().ok());  // granted
  d.core.cancelCall(waiter_id);
  // Nobody acts for `a` on that lock: it is free again, not stuck until
  // `a` ends (and `a` asking again would have got ALREADY_EXISTS).
  REQUIRE(eventually([&] { return d.tryAcquire(b, "job")->acquired; }));
  CHECK(d.core.check(a.id, "job")->state == LockState::kNotHeld);
}

TEST_CASE("a TryAcquire whose caller gave up gives the lock back - after its grant or while in flight", "[locks]") {
  Daemon d(newKeeper());
  auto a = d.open("gave-up");
  auto b = d.open("other");
  for (const bool in_flight : {false, true}) {
    CAPTURE(in_flight);
    std::promise<absl::StatusOr<core::TryAcquireResult>> answer;
    const int64_t call = d.core.tryAcquire(
        a.id, "job", [&](absl::StatusOr<core::TryAcquireResult> r) { answer.set_value(std::move(r)); });
    REQUIRE(call != 0);
    auto result = answer.get_future();
    if (!in_flight) REQUIRE(result.get()->acquired);  // granted, the answer on its way
    d.core.cancelCall(call);
    if (in_flight) result.get().IgnoreError();  // whatever it says, nobody reads it
    // Nobody acts for `a` on that lock: it is free again, not stuck until
    // `a` ends, and `a` asking again is not told it holds it already.
    CHECK(eventually([&] { return d.core.check(a.id, "job")->state == LockState::kNotHeld; }));
    auto taken = d.tryAcquire(b, "job");
    REQUIRE(taken.ok());
    CHECK(taken->acquired);
    REQUIRE(d.release(b, "job").ok());
    auto again = d.tryAcquire(a, "job");
    REQUIRE(again.ok());
    CHECK(again->acquired);
    REQUIRE(d.release(a, "job").ok());
  }
}

TEST_CASE("a Campaign whose caller gave up withdraws the candidacy - after its answer or while in flight",
          "[elections]") {
  Daemon d(newKeeper());
  auto a = d.open("gave-up");
  auto b = d.open("other");
  for (const bool in_flight : {false, true}) {
    CAPTURE(in_flight);
    std::promise<absl::StatusOr<core::ElectionStatus>> answer;
    const int64_t call = d.core.campaign(
        a.id, "svc", "", true, [&](absl::StatusOr<core::ElectionStatus> r) { answer.set_value(std::move(r)); });
    REQUIRE(call != 0);
    auto result = answer.get_future();
    if (!in_flight) REQUIRE(result.get()->status == core::CandidateStatus::kPrimary);
    d.core.cancelCall(call);
    if (in_flight) result.get().IgnoreError();
    // No PRIMARY nobody acts for: `b` becomes primary, and `a` may stand again.
    CHECK(eventually([&] { return d.core.status(a.id, "svc")->status == core::CandidateStatus::kNotCandidate; }));
    auto other = d.campaign(b, "svc");
    REQUIRE(other.ok());
    CHECK(other->status == core::CandidateStatus::kPrimary);
    REQUIRE(d.resign(b, "svc").ok());
    auto again = d.campaign(a, "svc");
    REQUIRE(again.ok());
    CHECK(again->status == core::CandidateStatus::kPrimary);
    REQUIRE(d.resign(a, "svc").ok());
  }
}

TEST_CASE("a Campaign whose caller gave up is withdrawn even after its candidacy was lost and rejoined",
          "[elections]") {
  // gRPC tells the core the caller is gone only after the coordinator
  // session expired and the candidacy rejoined with a new registration.
  Daemon d(newKeeper());
  auto a = d.open("gave-up");
  auto b = d.open("other");
  std::promise<absl::StatusOr<core::ElectionStatus>> answer;
  const int64_t call = d.core.campaign(a.id, "svc", "", true,
                                       [&](absl::StatusOr<core::ElectionStatus> r) { answer.set_value(std::move(r)); });
  REQUIRE(call != 0);
  auto first = answer.get_future().get();
  REQUIRE(first.ok());
  REQUIRE(first->status == core::CandidateStatus::kPrimary);
  d.expire();
  REQUIRE(a.events->waitElection("svc", core::CandidateStatus::kTerminated));
  REQUIRE(a.events->waitElection("svc", core::CandidateStatus::kPrimary));  // rejoined
  d.core.cancelCall(call);
  // No PRIMARY nobody acts for.
  CHECK(eventually([&] { return d.core.status(a.id, "svc")->status == core::CandidateStatus::kNotCandidate; }));
  auto other = d.campaign(b, "svc");
  REQUIRE(other.ok());
  CHECK(other->status == core::CandidateStatus::kPrimary);
}

TEST_CASE("a TryAcquire answered with an error leaves no call behind - whether its caller then cancels or not",
          "[locks]") {
  // The lock is granted by the coordinator after the session ended: the
  // core gives it back and answers an error. gRPC may then report the call
  // cancelled (OnCancel) instead of done.
  auto keeper = newKeeper();
  // A lock of its own per case: the first one's give-back may still be
  // under way when the second one's create is answered.
  const backend::recipes::Layout layout("");
  const std::set<std::string> lock_paths = {layout.lock("job-cancelled"), layout.lock("job-answered")};
  auto go = std::make_shared<std::atomic<bool>>(true);
  Daemon d(keeper, faultyBackend(keeper, [=](const std::string& op, const std::string& path) {
             // The backend's thread waits.
             while (op == "create" && lock_paths.count(path) && !go->load()) std::this_thread::sleep_for(1ms);
             return backend::keeper::FaultyKeeper::Fault::kNone;
           }));
  for (const bool cancelled : {true, false}) {
    CAPTURE(cancelled);
    auto a = d.open("ends");
    go->store(false);
    std::promise<absl::StatusOr<core::TryAcquireResult>> answer;
    const int64_t call =
        d.core.tryAcquire(a.id, cancelled ? "job-cancelled" : "job-answered",
                          [&](absl::StatusOr<core::TryAcquireResult> r) { answer.set_value(std::move(r)); });
    REQUIRE(call != 0);
    d.core.closeSession(a.id, [](absl::Status) {});
    go->store(true);  // the create goes on
    auto result = answer.get_future().get();
    CHECK(absl::IsFailedPrecondition(result.status()));
    if (cancelled) {
      d.core.cancelCall(call);
    } else {
      d.core.callAnswered(call);
    }
    CHECK(d.core.daemonStatus().calls_pending == 0);
  }
}

TEST_CASE("verification reads that keep failing are tried again ever less often - the keeper is not flooded",
          "[locks][link]") {
  auto keeper = newKeeper();
  const std::string lock_path = backend::recipes::Layout("").lock("job");
  auto failing = std::make_shared<std::atomic<bool>>(false);
  auto reads = std::make_shared<std::atomic<int>>(0);
  Daemon d(keeper, faultyBackend(keeper, [=](const std::string& op, const std::string& path) {
             if (op != "exists" || path != lock_path || !failing->load())
               return backend::keeper::FaultyKeeper::Fault::kNone;
             ++*reads;
             return backend::keeper::FaultyKeeper::Fault::kLoseBeforeApplied;
           }));
  auto a = d.open();
  REQUIRE(d.tryAcquire(a, "job")->acquired);
  d.suspend();
  REQUIRE(a.events->waitLinkSuspended());
  failing->store(true);
  d.reconnect();
  std::this_thread::sleep_for(2500ms);
  // The watch's re-arm, then the verification and its retries: 200 ms,
  // 400 ms, 800 ms apart (doubling), not every 200 ms (a dozen reads).
  CHECK(reads->load() >= 3);
  CHECK(reads->load() <= 6);
  CHECK(d.core.check(a.id, "job")->state == LockState::kSuspended);
}

TEST_CASE("a LOST while the client's stream is broken comes first on its next stream", "[locks]") {
  // The stream broke (a one-sided TCP failure, a dropped slow reader) and
  // the client lives on; meanwhile an admin frees its lock. A client that
  // reattaches must learn of the loss before a new lease, or it would act
  // on a lock that another holds.
  auto keeper = newKeeper();
  Daemon d1(keeper);
  Daemon d2(keeper);
  auto a = d1.open("holder");
  REQUIRE(d1.tryAcquire(a, "job")->acquired);
  d1.core.detachStream(a.id, a.events.get());
  REQUIRE(await<backend::LockHolder>([&](auto cb) { d2.backend.forceUnlock("job", cb); }).ok());
  REQUIRE(eventually([&] { return d1.core.check(a.id, "job")->state == LockState::kNotHeld; }));
  // Taken again meanwhile: that newer hold must not hide the loss.
  auto retaken = d1.tryAcquire(a, "job");
  REQUIRE(retaken->acquired);
  auto again = std::make_shared<RecordingSink>();
  REQUIRE(d1.core.attachStream(a.id, again, 7).ok());
  auto first = again->waitFor([](const core::Event&) { return true; });
  REQUIRE(first);
  CHECK(first->kind == core::Event::Kind::kLock);
  CHECK(first->name == "job");
  CHECK(first->lock_state == LockState::kLost);
  CHECK(first->token != retaken->token);
}

TEST_CASE("a lock listing with a read lost fails - never a partial list", "[locks][admin]") {
  auto keeper = newKeeper();
  const backend::recipes::Layout layout("");
  const std::string bucket = layout.lock("job-1").substr(0, layout.lock("job-1").rfind('/'));
  REQUIRE(bucket != layout.lock("job-2").substr(0, layout.lock("job-2").rfind('/')));
  auto lose = std::make_shared<std::atomic<bool>>(false);
  Daemon d(keeper, faultyBackend(keeper, [bucket, lose](const std::string& op, const std::string& path) {
             if (op == "children" && path == bucket && lose->exchange(false)) {
               return backend::keeper::FaultyKeeper::Fault::kLoseBeforeApplied;
             }
             return backend::keeper::FaultyKeeper::Fault::kNone;
           }));
  auto a = d.open();
  REQUIRE(d.tryAcquire(a, "job-1")->acquired);
  REQUIRE(d.tryAcquire(a, "job-2")->acquired);
  lose->store(true);
  auto listed = await<std::vector<backend::LockView>>([&](auto cb) { d.backend.listLocks(cb); });
  CHECK(absl::IsUnavailable(listed.status()));
  auto again = await<std::vector<backend::LockView>>([&](auto cb) { d.backend.listLocks(cb); });
  REQUIRE(again.ok());
  CHECK(again->size() == 2);
}

TEST_CASE("a waiter whose node someone else deleted is told to retry, not that the session expired", "[locks]") {
  auto keeper = newKeeper();
  Daemon d(keeper);
  auto holder = d.open("holder");
  auto waiter = d.open("waiter");
  REQUIRE(d.tryAcquire(holder, "job")->acquired);
  auto answer = d.acquireAsync(waiter, "job", 10s);
  const std::string queue = backend::recipes::Layout("").waiterQueue("job");
  REQUIRE(eventually([&] {
    auto q = keeper->peek(queue);
    return q && q->children.size() == 1;
  }));
  // An operator (or another tool) deletes the waiter's node.
  backend::SerialExecutor admin_thread;
  auto admin = keeper->open([&](std::function<void()> task) { admin_thread.post(std::move(task)); },
                            [](backend::keeper::SessionState) {});
  std::promise<backend::keeper::Code> deleted;
  admin->remove(queue + "/" + keeper->peek(queue)->children.front(), -1,
                [&](const backend::keeper::Result& r) { deleted.set_value(r.code); });
  REQUIRE(deleted.get_future().get() == backend::keeper::Code::kOk);
  REQUIRE(d.release(holder, "job").ok());
  auto result = answer.get();
  CHECK(absl::IsUnavailable(result.status()));
  CHECK(result.status().message().find("session expired") == std::string::npos);
}

TEST_CASE("reconnects do not multiply the watches a daemon has set", "[locks][link]") {
  // The keeper keeps a session's watches across a reconnect (ZooKeeper's
  // client restores them); setting them again each time would pile them up.
  auto keeper = newKeeper();
  Daemon d(keeper);
  auto a = d.open();
  for (int i = 0; i < 10; ++i) REQUIRE(d.tryAcquire(a, "job-" + std::to_string(i))->acquired);
  REQUIRE(d.campaign(a, "svc")->status == core::CandidateStatus::kPrimary);
  const size_t before = d.watchCount();
  REQUIRE(before >= 11);
  for (int round = 0; round < 5; ++round) {
    d.suspend();
    REQUIRE(a.events->waitLinkSuspended());
    d.reconnect();
    for (int i = 0; i < 10; ++i) REQUIRE(a.events->waitLock("job-" + std::to_string(i), LockState::kRestored));
  }
  const bool same = eventually([&] { return d.watchCount() == before; });
  INFO("watches: " << before << " before the reconnects, " << d.watchCount() << " after");
  CHECK(same);
}
