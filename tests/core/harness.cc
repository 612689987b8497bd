#include "harness.h"

#include <catch2/catch.hpp>

#include <thread>

#include "core/ids.h"

namespace coordd::testing {

void RecordingSink::send(const core::Event& event) {
  std::lock_guard<std::mutex> lock(mu_);
  events_.push_back(event);
  cv_.notify_all();
}

void RecordingSink::close() {
  std::lock_guard<std::mutex> lock(mu_);
  closed_ = true;
  cv_.notify_all();
}

bool RecordingSink::closed() {
  std::unique_lock<std::mutex> lock(mu_);
  return cv_.wait_for(lock, 2s, [this] { return closed_; });
}

std::optional<core::Event> RecordingSink::waitLock(const std::string& name, core::LockState state) {
  return waitFor([&](const core::Event& e) {
    return e.kind == core::Event::Kind::kLock && e.name == name && e.lock_state == state;
  });
}

std::optional<core::Event> RecordingSink::waitLinkSuspended() {
  return waitFor([](const core::Event& e) {
    return e.kind == core::Event::Kind::kHeartbeat && e.link == backend::LinkState::kSuspended;
  });
}

std::optional<core::Event> RecordingSink::waitElection(const std::string& election, core::CandidateStatus status) {
  return waitFor([&](const core::Event& e) {
    return e.kind == core::Event::Kind::kElection && e.name == election && e.status == status;
  });
}

bool eventually(const std::function<bool()>& condition) {
  auto deadline = std::chrono::steady_clock::now() + 2s;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(2ms);
  }
  return condition();
}

std::shared_ptr<backend::keeper::MemoryKeeper> newKeeper() { return std::make_shared<backend::keeper::MemoryKeeper>(); }

std::unique_ptr<backend::Backend> faultyBackend(const std::shared_ptr<backend::keeper::MemoryKeeper>& keeper,
                                                backend::keeper::FaultyKeeper::Policy policy) {
  backend::recipes::KeeperOptions options = backend::memory::embeddedOptions(keeper);
  options.open_session =
      [keeper, policy](
          backend::keeper::Keeper::Post post,
          backend::keeper::Keeper::SessionWatch watch) -> absl::StatusOr<std::unique_ptr<backend::keeper::Keeper>> {
    return std::make_unique<backend::keeper::FaultyKeeper>(keeper->open(post, std::move(watch)), post, policy);
  };
  return std::make_unique<backend::recipes::KeeperBackend>(std::move(options));
}

Daemon::Daemon(std::shared_ptr<backend::keeper::MemoryKeeper> keeper_in, core::Limits limits)
    : Daemon(keeper_in, std::make_unique<backend::recipes::KeeperBackend>(backend::memory::embeddedOptions(keeper_in)),
             limits) {}

Daemon::Daemon(std::shared_ptr<backend::keeper::MemoryKeeper> keeper_in, std::unique_ptr<backend::Backend> backend_in,
               core::Limits limits)
    : keeper(std::move(keeper_in)),
      owned_backend(std::move(backend_in)),
      backend(*owned_backend),
      core(core::CoreOptions{core::randomHex(32), limits, nullptr}, backend) {
  core.start();
  waitLink(backend::LinkState::kConnected);
}

Daemon::~Daemon() {
  core.shutdown("test over", absl::Seconds(2));
  backend.stop();
}

int64_t Daemon::keeperSession() const { return std::stoll(backend.info().session, nullptr, 16); }

int64_t Daemon::watchSession() const {
  const std::string id = backend.info().watch_session;
  return id.empty() ? 0 : std::stoll(id, nullptr, 16);
}

size_t Daemon::watchCount() const { return keeper->watchCount(keeperSession()) + keeper->watchCount(watchSession()); }

void Daemon::suspend() {
  keeper->disconnect(keeperSession());
  if (watchSession() != 0) keeper->disconnect(watchSession());
}

void Daemon::reconnect() {
  keeper->reconnect(keeperSession());
  if (watchSession() != 0) keeper->reconnect(watchSession());
}

void Daemon::expire() {
  const int64_t session = keeperSession();
  keeper->expire(session);
  keeper->reconnect(session);
  if (watchSession() != 0) keeper->reconnect(watchSession());  // contact is back for both
}

void Daemon::waitLink(backend::LinkState state) {
  REQUIRE(eventually([&] {
    auto status = core.daemonStatus();
    return status.link == state && (state != backend::LinkState::kConnected || status.ready);
  }));
}

Daemon::Client Daemon::open(const std::string& owner, std::chrono::milliseconds ttl,
                            std::shared_ptr<const core::ClientProcesses> processes) {
  auto info = core.openSession(owner, ttl, {{"role", "test"}}, std::move(processes));
  if (!info.ok()) throw std::runtime_error(info.status().ToString());
  Client client{info->session_id, std::make_shared<RecordingSink>()};
  auto attached = core.attachStream(client.id, client.events);
  if (!attached.ok()) throw std::runtime_error(attached.ToString());
  return client;
}

absl::StatusOr<core::TryAcquireResult> Daemon::tryAcquire(const Client& c, const std::string& name) {
  std::promise<absl::StatusOr<core::TryAcquireResult>> promise;
  const int64_t call =
      core.tryAcquire(c.id, name, [&](absl::StatusOr<core::TryAcquireResult> r) { promise.set_value(std::move(r)); });
  auto result = promise.get_future().get();
  core.callAnswered(call);  // as gRPC's OnDone
  return result;
}

std::future<absl::StatusOr<int64_t>> Daemon::acquireAsync(const Client& c, const std::string& name,
                                                          std::chrono::milliseconds timeout, int64_t* waiter_id) {
  auto promise = std::make_shared<std::promise<absl::StatusOr<int64_t>>>();
  auto future = promise->get_future();
  int64_t id = core.acquire(c.id, name, timeout, [promise](absl::StatusOr<int64_t> r) { promise->set_value(r); });
  if (waiter_id != nullptr) *waiter_id = id;
  return future;
}

absl::StatusOr<int64_t> Daemon::acquire(const Client& c, const std::string& name, std::chrono::milliseconds timeout) {
  int64_t call = 0;
  auto result = acquireAsync(c, name, timeout, &call).get();
  core.callAnswered(call);
  return result;
}

absl::Status Daemon::release(const Client& c, const std::string& name) {
  std::promise<absl::Status> promise;
  core.release(c.id, name, [&](absl::Status s) { promise.set_value(s); });
  return promise.get_future().get();
}

absl::StatusOr<core::ElectionStatus> Daemon::campaign(const Client& c, const std::string& election, bool rejoin,
                                                      const std::string& value) {
  std::promise<absl::StatusOr<core::ElectionStatus>> promise;
  const int64_t call = core.campaign(c.id, election, value, rejoin,
                                     [&](absl::StatusOr<core::ElectionStatus> r) { promise.set_value(std::move(r)); });
  auto result = promise.get_future().get();
  core.callAnswered(call);
  return result;
}

absl::Status Daemon::resign(const Client& c, const std::string& election) {
  std::promise<absl::Status> promise;
  core.resign(c.id, election, [&](absl::Status s) { promise.set_value(s); });
  return promise.get_future().get();
}

absl::Status Daemon::close(const Client& c) {
  std::promise<absl::Status> promise;
  core.closeSession(c.id, [&](absl::Status s) { promise.set_value(s); });
  return promise.get_future().get();
}

}  // namespace coordd::testing
