// The recipes' backend on the in-memory keeper (the embedded coordinator):
// what its own lifecycle does to calls in flight.
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <thread>

#include "backend/memory/embedded.h"

using namespace coordd::backend;

namespace {

struct LinkListener : Listener {
  void onLinkState(LinkState state) override {
    if (state == LinkState::kConnected) connected = true;
  }
  void onLockLost(const std::string&, int64_t, const std::string&) override {}
  void onCandidacyChanged(const std::string&, int64_t, bool, bool, const std::string&) override {}
  void onLeaderChanged(const std::string&, const std::optional<Candidate>&) override {}
  std::atomic<bool> connected{false};
};

}  // namespace

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
