// The recipes' backend on the in-memory keeper (the embedded coordinator):
// what its own lifecycle does to calls in flight.
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include "backend/keeper/faulty_keeper.h"
#include "backend/memory/embedded.h"
#include "backend/recipes/layout.h"

using namespace coordd::backend;

namespace {

struct LinkListener : Listener {
  void onLinkState(LinkState state) override {
    if (state == LinkState::kConnected) connected = true;
  }
  void onLockLost(const std::string& name, int64_t token, const std::string&) override {
    std::lock_guard<std::mutex> lock(mu);
    lost.emplace_back(name, token);
  }
  std::vector<std::pair<std::string, int64_t>> lostLocks() {
    std::lock_guard<std::mutex> lock(mu);
    return lost;
  }
  void onCandidacyChanged(const std::string&, int64_t, bool, bool, const std::string&) override {}
  void onLeaderChanged(const std::string&, const std::optional<Candidate>&) override {}
  std::atomic<bool> connected{false};
  std::mutex mu;
  std::vector<std::pair<std::string, int64_t>> lost;
};

template <typename T>
T await(std::function<void(std::function<void(T)>)> call) {
  std::mutex mu;
  std::optional<T> got;
  call([&](T value) {
    std::lock_guard<std::mutex> lock(mu);
    got = std::move(value);
  });
  for (;;) {
    {
      std::lock_guard<std::mutex> lock(mu);
      if (got) return std::move(*got);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

// The calls each of the backend's two sessions answers, by op and path.
struct KeeperCalls {
  keeper::KeeperFactory wrap(keeper::KeeperFactory open, std::vector<std::string>* log) {
    return [this, open, log](keeper::Keeper::Post post,
                             keeper::Keeper::SessionWatch watch) -> absl::StatusOr<std::unique_ptr<keeper::Keeper>> {
      auto inner = open(post, std::move(watch));
      if (!inner.ok()) return inner.status();
      auto none = [](const std::string&, const std::string&) { return keeper::FaultyKeeper::Fault::kNone; };
      auto heard = [this, log](const std::string& op, const std::string& path, const keeper::Result& r) {
        std::lock_guard<std::mutex> lock(mu);
        log->push_back(op + " " + path + " " + keeper::codeName(r.code));
      };
      return std::make_unique<keeper::FaultyKeeper>(std::move(*inner), post, none, nullptr, heard);
    };
  }
  std::vector<std::string> take(std::vector<std::string>* log) {
    std::lock_guard<std::mutex> lock(mu);
    return std::exchange(*log, {});
  }
  bool heard(const std::vector<std::string>& log, const std::string& line) {
    std::lock_guard<std::mutex> lock(mu);
    return std::find(log.begin(), log.end(), line) != log.end();
  }

  std::mutex mu;
  std::vector<std::string> first, watcher;
};

// A session whose exists calls wait until the test lets them go: a watch
// that is being set.
class HoldingKeeper : public keeper::Keeper {
 public:
  HoldingKeeper(std::unique_ptr<keeper::Keeper> inner, Post post,
                std::shared_ptr<std::vector<std::function<void()>>> held, std::shared_ptr<std::mutex> mu)
      : inner_(std::move(inner)), post_(std::move(post)), held_(std::move(held)), mu_(std::move(mu)) {}
  void create(const std::string& path, const std::string& data, keeper::CreateMode mode, Done done) override {
    inner_->create(path, data, mode, std::move(done));
  }
  void get(const std::string& path, Done done) override { inner_->get(path, std::move(done)); }
  void exists(const std::string& path, Watch watch, Done done) override {
    std::lock_guard<std::mutex> lock(*mu_);
    held_->push_back([this, path, watch = std::move(watch), done = std::move(done)]() mutable {
      post_([this, path, watch = std::move(watch), done = std::move(done)]() mutable {
        inner_->exists(path, std::move(watch), std::move(done));
      });
    });
  }
  void children(const std::string& path, Watch watch, Done done) override {
    inner_->children(path, std::move(watch), std::move(done));
  }
  void remove(const std::string& path, int32_t version, Done done) override {
    inner_->remove(path, version, std::move(done));
  }
  void sync(const std::string& path, Done done) override { inner_->sync(path, std::move(done)); }
  void multi(std::vector<keeper::Op> ops, Done done) override { inner_->multi(std::move(ops), std::move(done)); }
  int64_t sessionId() const override { return inner_->sessionId(); }
  int64_t negotiatedTimeoutMs() const override { return inner_->negotiatedTimeoutMs(); }
  std::string server() const override { return inner_->server(); }

 private:
  const std::unique_ptr<keeper::Keeper> inner_;
  const Post post_;
  const std::shared_ptr<std::vector<std::function<void()>>> held_;
  const std::shared_ptr<std::mutex> mu_;
};

struct HeldExists {
  keeper::KeeperFactory wrap(keeper::KeeperFactory open) {
    return [this, open](keeper::Keeper::Post post,
                        keeper::Keeper::SessionWatch watch) -> absl::StatusOr<std::unique_ptr<keeper::Keeper>> {
      auto inner = open(post, std::move(watch));
      if (!inner.ok()) return inner.status();
      return std::make_unique<HoldingKeeper>(std::move(*inner), post, held, mu);
    };
  }
  size_t count() {
    std::lock_guard<std::mutex> lock(*mu);
    return held->size();
  }
  void letGo() {
    std::vector<std::function<void()>> calls;
    {
      std::lock_guard<std::mutex> lock(*mu);
      calls.swap(*held);
    }
    for (auto& call : calls) call();
  }

  std::shared_ptr<std::vector<std::function<void()>>> held = std::make_shared<std::vector<std::function<void()>>>();
  std::shared_ptr<std::mutex> mu = std::make_shared<std::mutex>();
};

// The recipes on the in-memory keeper, each session's answers recorded in
// `calls`, the watch session's factory wrapped by `watch_session` if given;
// started, connected, and holding lock "job".
struct BackendHoldingJob {
  explicit BackendHoldingJob(std::function<keeper::KeeperFactory(keeper::KeeperFactory)> watch_session = nullptr) {
    recipes::KeeperOptions options = memory::embeddedOptions(memory_keeper);
    options.metrics = std::make_shared<coordd::metrics::DaemonMetrics>();
    keeper::KeeperFactory watch_factory = watch_session ? watch_session(options.open_session) : options.open_session;
    options.open_watch_session = calls.wrap(watch_factory, &calls.watcher);
    options.open_session = calls.wrap(options.open_session, &calls.first);
    backend = std::make_unique<recipes::KeeperBackend>(std::move(options));
    backend->start(&listener);
    while (!listener.connected) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    const OwnerRecord owner{std::string(32, 'a'), "session", "test", {}};
    auto held = await<absl::StatusOr<TryLockResult>>([&](auto done) { backend->tryLock("job", owner, done); });
    REQUIRE(held.ok());
    REQUIRE(held->acquired);
    token = held->token;
  }
  ~BackendHoldingJob() { backend->stop(); }

  const std::string path = recipes::Layout("").lock("job");
  std::shared_ptr<keeper::MemoryKeeper> memory_keeper = std::make_shared<keeper::MemoryKeeper>();
  KeeperCalls calls;
  LinkListener listener;
  std::unique_ptr<recipes::KeeperBackend> backend;
  int64_t token = 0;
};

}  // namespace

TEST_CASE("keeper backend: Release of a watched lock is one delete - no read waits in the first session", "[recipes]") {
  BackendHoldingJob job;
  auto& calls = job.calls;
  // Watched once the watch session's exists is answered.
  for (int i = 0; i < 30000 && !calls.heard(calls.watcher, "exists " + job.path + " ok"); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  REQUIRE(calls.heard(calls.watcher, "exists " + job.path + " ok"));
  calls.take(&calls.first);

  SECTION("its own token: one delete") {
    auto released = await<absl::Status>([&](auto done) { job.backend->unlock("job", job.token, done); });
    CHECK(released.ok());
    CHECK(calls.take(&calls.first) == std::vector<std::string>{"delete " + job.path + " ok"});
    CHECK_FALSE(job.memory_keeper->peek(job.path));
  }
  SECTION("another token: read first - the hold is not deleted") {
    auto released = await<absl::Status>([&](auto done) { job.backend->unlock("job", job.token + 1, done); });
    CHECK(absl::IsNotFound(released));
    for (const auto& call : calls.take(&calls.first)) {
      CHECK(call.rfind("delete", 0) != 0);
      CHECK(call.rfind("multi", 0) != 0);
    }
    CHECK(job.memory_keeper->peek(job.path));
  }
}

TEST_CASE("keeper backend: a Release while the watch is being set waits for its answer - no read in the first session",
          "[recipes]") {
  HeldExists hold;
  BackendHoldingJob job([&](keeper::KeeperFactory open) { return hold.wrap(std::move(open)); });
  auto& calls = job.calls;
  for (int i = 0; i < 30000 && hold.count() == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  REQUIRE(hold.count() == 1);  // the watch's exists, held
  calls.take(&calls.first);

  std::mutex mu;
  std::optional<absl::Status> released;
  job.backend->unlock("job", job.token, [&](absl::Status status) {
    std::lock_guard<std::mutex> lock(mu);
    released = status;
  });
  const auto answered = [&] {
    std::lock_guard<std::mutex> lock(mu);
    return released.has_value();
  };

  SECTION("the watch finds the node ours: one delete") {
    hold.letGo();
    for (int i = 0; i < 30000 && !answered(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    REQUIRE(answered());
    CHECK(released->ok());
    CHECK(calls.take(&calls.first) == std::vector<std::string>{"delete " + job.path + " ok"});
    CHECK_FALSE(job.memory_keeper->peek(job.path));
  }
  SECTION("the node is another's by then: nothing deleted, NOT_FOUND") {
    // An admin frees the lock and another session takes it.
    auto other = job.memory_keeper->open([](std::function<void()> task) { task(); }, [](keeper::SessionState) {});
    std::atomic<int> steps{0};
    other->remove(job.path, -1, [&](const keeper::Result& r) {
      if (r.code == keeper::Code::kOk) ++steps;
    });
    other->create(job.path, "", keeper::CreateMode::kEphemeral, [&](const keeper::Result& r) {
      if (r.code == keeper::Code::kOk) ++steps;
    });
    REQUIRE(steps == 2);
    hold.letGo();
    for (int i = 0; i < 30000 && !answered(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    REQUIRE(answered());
    CHECK(absl::IsNotFound(*released));
    for (const auto& call : calls.take(&calls.first)) CHECK(call.rfind("delete", 0) != 0);
    CHECK(job.memory_keeper->peek(job.path));
  }
}

TEST_CASE(
    "keeper backend: a lock taken again through the same daemon before its loss is heard - the older hold is "
    "LOST and its Release answered",
    "[recipes]") {
  // The watch of the first hold is still being set when an admin deletes
  // the node and this daemon creates it again for another caller.
  HeldExists hold;
  BackendHoldingJob job([&](keeper::KeeperFactory open) { return hold.wrap(std::move(open)); });
  for (int i = 0; i < 30000 && hold.count() == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  REQUIRE(hold.count() == 1);
  std::mutex mu;
  std::optional<absl::Status> released;
  job.backend->unlock("job", job.token, [&](absl::Status status) {
    std::lock_guard<std::mutex> lock(mu);
    released = status;
  });
  auto admin = job.memory_keeper->open([](std::function<void()> task) { task(); }, [](keeper::SessionState) {});
  admin->remove(job.path, -1, [](const keeper::Result&) {});
  const OwnerRecord other{std::string(32, 'b'), "other", "test", {}};
  auto again = await<absl::StatusOr<TryLockResult>>([&](auto done) { job.backend->tryLock("job", other, done); });
  REQUIRE(again.ok());
  REQUIRE(again->acquired);
  CHECK(again->token > job.token);
  CHECK(job.listener.lostLocks() == std::vector<std::pair<std::string, int64_t>>{{"job", job.token}});
  std::lock_guard<std::mutex> lock(mu);
  REQUIRE(released.has_value());
  CHECK(absl::IsNotFound(*released));
  CHECK(job.memory_keeper->peek(job.path));  // the new hold's node stays
}

TEST_CASE("keeper backend: stop() answers the calls in flight - nothing runs on the closed session", "[recipes]") {
  // Each call below is a chain of keeper calls; stop() closes the session
  // while the first answer of each is queued behind it. Those answers must
  // end their chains (the callers told), not go on without a session.
  for (int round = 0; round < 20; ++round) {
    auto backend = memory::makeEmbeddedBackend(std::make_shared<coordd::metrics::DaemonMetrics>());
    LinkListener listener;
    backend->start(&listener);
    while (!listener.connected) std::this_thread::sleep_for(std::chrono::milliseconds(1));

    const OwnerRecord owner{std::string(32, 'a'), "session", "test", {}};
    std::atomic<int> answered{0};
    backend->campaign("svc", owner, "", [&](absl::StatusOr<Backend::CampaignResult>) { ++answered; });
    backend->tryLock("job", owner, [&](absl::StatusOr<TryLockResult>) { ++answered; });
    backend->lock("queued", owner, 7, [&](absl::StatusOr<int64_t>) { ++answered; });
    backend->stop();
    INFO("round " << round);
    CHECK(answered == 3);
  }
}
