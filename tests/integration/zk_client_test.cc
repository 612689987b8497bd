// The raw keeper on the ZooKeeper C client (ZkClient) against a real
// ZooKeeper: the watches it keeps for the calls that set them.
#include <signal.h>

#include <catch2/catch.hpp>
#include <future>
#include <memory>

#include "backend/serial_executor.h"
#include "backend/zookeeper/zk_client.h"
#include "harness.h"
#include "zookeeper.h"

using namespace coordd::e2e;
using coordd::backend::SerialExecutor;
using coordd::backend::keeper::Code;
using coordd::backend::keeper::CreateMode;
using coordd::backend::keeper::Result;
using coordd::backend::keeper::SessionState;
using coordd::backend::keeper::WatchEvent;
using coordd::backend::zookeeper::ZkClient;

namespace {

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

  // Waits for a call's answer.
  template <typename Issue>
  Result call(Issue issue) {
    auto answer = std::make_shared<std::promise<Result>>();
    issue([answer](const Result& result) { answer->set_value(result); });
    auto future = answer->get_future();
    REQUIRE(future.wait_for(std::chrono::seconds(30)) == std::future_status::ready);
    return future.get();
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
