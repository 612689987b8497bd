#include <catch2/catch.hpp>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "backend/keeper/memory_keeper.h"

using namespace coordd::backend::keeper;

namespace {

// A client of the keeper whose answers, watches and session states queue up
// here, in the order the keeper hands them over, and run when drained.
struct Client {
  explicit Client(const std::shared_ptr<MemoryKeeper>& keeper)
      : session(keeper->open([this](std::function<void()> task) { queue.push_back(std::move(task)); },
                             [this](SessionState state) { states.push_back(state); })) {}

  void drain() {
    while (!queue.empty()) {
      auto task = std::move(queue.front());
      queue.pop_front();
      task();
    }
  }
  Result create(const std::string& path, CreateMode mode = CreateMode::kPersistent) {
    Result result;
    session->create(path, "data", mode, [&](const Result& r) { result = r; });
    drain();
    return result;
  }
  Result remove(const std::string& path, int32_t version = -1) {
    Result result;
    session->remove(path, version, [&](const Result& r) { result = r; });
    drain();
    return result;
  }

  std::deque<std::function<void()>> queue;
  std::vector<SessionState> states;
  std::unique_ptr<Keeper> session;
};

}  // namespace

TEST_CASE("memory keeper: sequential names from the parent's counter, czxid increasing", "[keeper]") {
  auto keeper = std::make_shared<MemoryKeeper>();
  Client c(keeper);
  REQUIRE(c.create("/q").code == Code::kOk);
  auto first = c.create("/q/w-", CreateMode::kEphemeralSequential);
  auto second = c.create("/q/w-", CreateMode::kEphemeralSequential);
  CHECK(first.path == "/q/w-0000000000");
  CHECK(second.path == "/q/w-0000000001");
  CHECK(second.stat.czxid > first.stat.czxid);
  CHECK(first.stat.ephemeral_owner == c.session->sessionId());
  // A delete changes the counter too, as ZooKeeper's cversion.
  REQUIRE(c.remove(first.path).code == Code::kOk);
  CHECK(c.create("/q/w-", CreateMode::kEphemeralSequential).path == "/q/w-0000000003");
}

TEST_CASE("memory keeper: the codes ZooKeeper answers", "[keeper]") {
  auto keeper = std::make_shared<MemoryKeeper>();
  Client c(keeper);
  CHECK(c.create("/a/b").code == Code::kNoNode);
  REQUIRE(c.create("/a").code == Code::kOk);
  CHECK(c.create("/a").code == Code::kNodeExists);
  REQUIRE(c.create("/a/b").code == Code::kOk);
  CHECK(c.remove("/a").code == Code::kNotEmpty);
  CHECK(c.remove("/a/b", 5).code == Code::kBadVersion);
  REQUIRE(c.create("/e", CreateMode::kEphemeral).code == Code::kOk);
  CHECK(c.create("/e/child").code == Code::kNoChildrenForEphemerals);
  CHECK(c.create("bad").code == Code::kBadArguments);
}

TEST_CASE("memory keeper: a watch fires before the answer of the watcher's later request", "[keeper]") {
  auto keeper = std::make_shared<MemoryKeeper>();
  Client watcher(keeper);
  Client other(keeper);
  REQUIRE(other.create("/n").code == Code::kOk);
  std::vector<std::string> seen;
  watcher.session->exists(
      "/n", [&](WatchEvent e) { seen.push_back(e == WatchEvent::kDeleted ? "deleted" : "?"); },
      [&](const Result&) { seen.push_back("exists answered"); });
  watcher.drain();
  REQUIRE(other.remove("/n").code == Code::kOk);
  watcher.session->get("/n", [&](const Result& r) { seen.push_back(r.code == Code::kNoNode ? "get: no node" : "?"); });
  watcher.drain();
  CHECK(seen == std::vector<std::string>{"exists answered", "deleted", "get: no node"});
}

TEST_CASE("memory keeper: a disconnected session fails its calls and hears its watches once back", "[keeper]") {
  auto keeper = std::make_shared<MemoryKeeper>();
  Client a(keeper);
  Client b(keeper);
  REQUIRE(b.create("/n").code == Code::kOk);
  bool fired = false;
  a.session->exists(
      "/n", [&](WatchEvent) { fired = true; }, [](const Result&) {});
  a.drain();
  keeper->disconnect(a.session->sessionId());
  CHECK(a.create("/x").code == Code::kConnectionLoss);
  REQUIRE(b.remove("/n").code == Code::kOk);
  a.drain();
  CHECK_FALSE(fired);
  keeper->reconnect(a.session->sessionId());
  a.drain();
  CHECK(fired);
  CHECK(a.states ==
        std::vector<SessionState>{SessionState::kConnected, SessionState::kConnecting, SessionState::kConnected});
}

TEST_CASE("memory keeper: expiry takes the ephemerals at once - the session hears of it once connected", "[keeper]") {
  auto keeper = std::make_shared<MemoryKeeper>();
  auto a = std::make_unique<Client>(keeper);
  Client b(keeper);
  REQUIRE(a->create("/e", CreateMode::kEphemeral).code == Code::kOk);
  const int64_t id = a->session->sessionId();
  keeper->disconnect(id);
  keeper->expire(id);
  CHECK_FALSE(keeper->peek("/e"));
  a->drain();
  CHECK(a->states.back() == SessionState::kConnecting);
  keeper->reconnect(id);
  a->drain();
  CHECK(a->states.back() == SessionState::kExpired);
  CHECK(a->create("/y").code == Code::kSessionExpired);
}

TEST_CASE("memory keeper: a session closed while disconnected keeps its nodes until it expires", "[keeper]") {
  // ZooKeeper cannot hear a close from a client it has lost contact with.
  auto keeper = std::make_shared<MemoryKeeper>();
  auto a = std::make_unique<Client>(keeper);
  REQUIRE(a->create("/e", CreateMode::kEphemeral).code == Code::kOk);
  const int64_t id = a->session->sessionId();
  keeper->disconnect(id);
  a.reset();
  CHECK(keeper->peek("/e"));
  CHECK(keeper->abandoned(id));
  keeper->expire(id);
  CHECK_FALSE(keeper->peek("/e"));
  // Closed while connected: its nodes go at once.
  auto b = std::make_unique<Client>(keeper);
  REQUIRE(b->create("/f", CreateMode::kEphemeral).code == Code::kOk);
  b.reset();
  CHECK_FALSE(keeper->peek("/f"));
}

TEST_CASE("memory keeper: a children watch whose node went and came back while disconnected fires on reconnect",
          "[keeper]") {
  // As ZooKeeper's SetWatches: the node made again has its own pzxid, after
  // anything the session saw.
  auto keeper = std::make_shared<MemoryKeeper>();
  Client a(keeper);
  Client b(keeper);
  REQUIRE(b.create("/parent").code == Code::kOk);
  std::vector<WatchEvent> fired;
  a.session->children(
      "/parent", [&](WatchEvent event) { fired.push_back(event); }, [](const Result&) {});
  a.drain();
  keeper->disconnect(a.session->sessionId());
  REQUIRE(b.remove("/parent").code == Code::kOk);
  REQUIRE(b.create("/parent").code == Code::kOk);
  keeper->reconnect(a.session->sessionId());
  a.drain();
  CHECK(fired == std::vector<WatchEvent>{WatchEvent::kChild});
}
