// The raw keeper on the ZooKeeper C client (ZkClient) against a real
// ZooKeeper: the watches it keeps for the calls that set them, and its
// transactions next to the in-memory keeper's.
#include <signal.h>

#include <catch2/catch.hpp>
#include <future>
#include <memory>

#include "backend/keeper/memory_keeper.h"
#include "backend/serial_executor.h"
#include "backend/zookeeper/zk_client.h"
#include "harness.h"
#include "zookeeper.h"

using namespace coordd::e2e;
using coordd::backend::SerialExecutor;
using coordd::backend::keeper::Code;
using coordd::backend::keeper::CreateMode;
using coordd::backend::keeper::Keeper;
using coordd::backend::keeper::MemoryKeeper;
using coordd::backend::keeper::Op;
using coordd::backend::keeper::Result;
using coordd::backend::keeper::SessionState;
using coordd::backend::keeper::WatchEvent;
using coordd::backend::zookeeper::ZkClient;

namespace {

// Waits for a call's answer.
template <typename Issue>
Result await(Issue issue) {
  auto answer = std::make_shared<std::promise<Result>>();
  issue([answer](const Result& result) { answer->set_value(result); });
  auto future = answer->get_future();
  REQUIRE(future.wait_for(std::chrono::seconds(30)) == std::future_status::ready);
  return future.get();
}

// One ZkClient session whose answers and watches run on its own executor.
class Session {
 public:
  explicit Session(const ZooKeeper& zk, const std::string& digest = "", bool creator_acl = false) {
    ZkClient::Options options;
    options.hosts = "127.0.0.1:" + std::to_string(zk.clientPort());
    options.timeout_ms = 4000;
    options.digest = digest;
    options.creator_acl = creator_acl;
    options.metrics = std::make_shared<coordd::metrics::DaemonMetrics>();
    auto post = [this](std::function<void()> task) { executor_.post(std::move(task)); };
    auto on_session = [this](SessionState state) { connected_ = state == SessionState::kConnected; };
    client_ = ZkClient::connect(options, post, on_session).value();
    REQUIRE(eventually([&] { return connected_.load(); }));
  }
  ~Session() {
    client_.reset();
    executor_.stop();
  }
  ZkClient& operator*() { return *client_; }
  ZkClient* operator->() { return client_.get(); }
  bool connected() const { return connected_; }

  template <typename Issue>
  Result call(Issue issue) {
    return await(issue);
  }

 private:
  SerialExecutor executor_;
  std::atomic<bool> connected_{false};
  std::unique_ptr<ZkClient> client_;
};

}  // namespace

TEST_CASE("zk client: a watch is kept only while it can still fire - a failed call leaves none behind",
          "[zookeeper][keeper]") {
  ZooKeeper zk;
  Session owner(zk, "owner:secret", true);
  Session stranger(zk, "stranger:secret");
  std::atomic<int> fired{0};
  auto count = [&fired](WatchEvent) { ++fired; };

  // A node only its creator may read: the stranger's children call is
  // refused (NOAUTH), and ZooKeeper sets no watch.
  REQUIRE(owner.call([&](auto done) { owner->create("/private", "", CreateMode::kPersistent, done); }).code ==
          Code::kOk);
  CHECK(stranger.call([&](auto done) { stranger->children("/private", count, done); }).code == Code::kNoAuth);
  CHECK(stranger->watchesPending() == 0);

  // An exists call whose answer is lost (the server frozen past the
  // client's receive timeout): no watch either.
  zk.signal(SIGSTOP);
  const Code lost = stranger.call([&](auto done) { stranger->exists("/absent", count, done); }).code;
  zk.signal(SIGCONT);
  CHECK((lost == Code::kConnectionLoss || lost == Code::kOperationTimeout));
  CHECK(stranger->watchesPending() == 0);
  REQUIRE(eventually([&] { return stranger.connected(); }, std::chrono::seconds(10)));

  // The calls that set a watch keep it until it fires: exists on an absent
  // node (NONODE) and children of a node that exists.
  CHECK(stranger.call([&](auto done) { stranger->exists("/later", count, done); }).code == Code::kNoNode);
  CHECK(stranger.call([&](auto done) { stranger->children("/", count, done); }).code == Code::kOk);
  CHECK(stranger->watchesPending() == 2);
  // (By a session with open ACLs: ZooKeeper tells a watcher of a node's
  // creation only if it may read the node.)
  Session plain(zk);
  REQUIRE(plain.call([&](auto done) { plain->create("/later", "", CreateMode::kPersistent, done); }).code == Code::kOk);
  CHECK(eventually([&] { return fired == 2; }));
  CHECK(stranger->watchesPending() == 0);
}

namespace {

// What a multi did, as codes and the tree after it.
std::vector<std::string> transactions(Keeper& keeper) {
  std::vector<std::string> seen;
  auto codes = [&](const Result& r) {
    std::string line = codeName(r.code);
    for (const auto& op : r.results) line += std::string(" | ") + codeName(op.code) + " " + op.path;
    seen.push_back(line);
  };
  auto present = [&](const std::string& path) {
    return await([&](auto done) { keeper.exists(path, nullptr, done); }).code == Code::kOk;
  };
  REQUIRE(await([&](auto done) { keeper.create("/m", "", CreateMode::kPersistent, done); }).code == Code::kOk);

  // All applied, with one zxid: the set's mzxid is every created node's czxid.
  Result made = await([&](auto done) {
    keeper.multi({Op::create("/m/a", "x", CreateMode::kEphemeral), Op::create("/m/b", "y", CreateMode::kPersistent),
                  Op::set("/m/a", "x", 0)},
                 done);
  });
  codes(made);
  REQUIRE(made.results.size() == 3);
  const Result a = await([&](auto done) { keeper.get("/m/a", done); });
  const Result b = await([&](auto done) { keeper.get("/m/b", done); });
  CHECK(a.stat.czxid == made.results[2].stat.mzxid);
  CHECK(b.stat.czxid == made.results[2].stat.mzxid);
  CHECK(a.stat.version == 1);
  CHECK(b.stat.version == 0);
  CHECK(a.stat.ephemeral_owner == keeper.sessionId());

  // One op fails: none applied; that op has the code, the others kNotApplied.
  codes(await([&](auto done) {
    keeper.multi({Op::create("/m/c", "", CreateMode::kEphemeral), Op::create("/m/a", "", CreateMode::kEphemeral),
                  Op::remove("/m/b", 0)},
                 done);
  }));
  CHECK_FALSE(present("/m/c"));
  CHECK(present("/m/b"));
  codes(await([&](auto done) { keeper.multi({Op::remove("/m/b", 0), Op::remove("/m/a", 0)}, done); }));
  CHECK(present("/m/a"));
  CHECK(present("/m/b"));

  // No container (the C client would abort on the answer): refused, unsent.
  codes(await([&](auto done) { keeper.multi({Op::create("/m/k", "", CreateMode::kContainer)}, done); }));
  CHECK_FALSE(present("/m/k"));

  // Deletes by version, together.
  codes(await([&](auto done) { keeper.multi({Op::remove("/m/b", 0), Op::remove("/m/a", 1)}, done); }));
  CHECK_FALSE(present("/m/a"));
  CHECK_FALSE(present("/m/b"));
  return seen;
}

}  // namespace

TEST_CASE("zk client: multi applies all or none - the in-memory keeper answers as ZooKeeper does",
          "[zookeeper][keeper]") {
  ZooKeeper zk;
  Session session(zk);
  const std::vector<std::string> on_zookeeper = transactions(*session);
  CHECK(on_zookeeper == std::vector<std::string>{
                            "ok | ok /m/a | ok /m/b | ok ",
                            "node exists | not applied (another op of the transaction failed)  | node exists  | "
                            "not applied (another op of the transaction failed) ",
                            "bad version | not applied (another op of the transaction failed)  | bad version ",
                            "unimplemented",
                            "ok | ok  | ok ",
                        });

  auto keeper = std::make_shared<MemoryKeeper>();
  SerialExecutor executor;
  auto memory = keeper->open([&](std::function<void()> task) { executor.post(std::move(task)); },
                             [](coordd::backend::keeper::SessionState) {});
  CHECK(transactions(*memory) == on_zookeeper);
  memory.reset();
  executor.stop();
}
