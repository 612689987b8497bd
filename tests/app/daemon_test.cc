// The daemon's lifecycle in process: what it serves once started, what a
// shutdown ends, and a start that fails half way.
#include "app/daemon.h"

#include <filesystem>

#include <catch2/catch.hpp>

#include "coordd/client.h"
#include "harness.h"
#include "probes.h"

using namespace coordd;
using e2e::TempDir;

namespace {

config::Config configIn(const TempDir& dir) {
  config::Config config;
  config.listen = {"unix:" + dir.file("coordd.sock")};
  config.http_listen = "127.0.0.1:0";
  config.shutdown_timeout = absl::Seconds(5);
  return config;
}

}  // namespace

TEST_CASE("Daemon - serves its socket and probes once started - shutdown ends every session and unbinds", "[app]") {
  TempDir dir;
  auto daemon = app::Daemon::start(configIn(dir));
  REQUIRE(daemon.ok());
  REQUIRE((*daemon)->addresses() == std::vector<std::string>{"unix:" + dir.file("coordd.sock")});
  const std::string http = (*daemon)->httpAddress();
  REQUIRE_FALSE(http.empty());
  CHECK(e2e::eventually([&] { return e2e::httpGet(http, "/readyz").code == 200; }));

  auto client = Client::connect((*daemon)->addresses().front()).value();
  SessionOptions options;
  options.owner = "in-process";
  auto session = client->openSession(options);
  REQUIRE(session.ok());
  auto lock = (*session)->tryLock("job");
  REQUIRE(lock.ok());
  REQUIRE(lock->acquired());

  (*daemon)->shutdown();
  CHECK(e2e::eventually([&] { return (*session)->ended(); }));
  CHECK_THAT((*session)->endReason(), Catch::Contains("daemon shutting down"));
  CHECK(lock->guard->state() == LockState::kLost);
  CHECK_FALSE(std::filesystem::exists(dir.file("coordd.sock")));
  CHECK(e2e::httpGet(http, "/healthz").code == 0);
  (*daemon)->shutdown();  // a second time: nothing left to do
}

TEST_CASE("Daemon - a start that fails at http.listen names it - and leaves nothing bound", "[app]") {
  TempDir dir;
  auto first = app::Daemon::start(configIn(dir));
  REQUIRE(first.ok());

  TempDir other;
  config::Config config = configIn(other);
  config.http_listen = (*first)->httpAddress();
  auto second = app::Daemon::start(config);
  REQUIRE_FALSE(second.ok());
  CHECK_THAT(std::string(second.status().message()), Catch::Contains("http.listen"));
  // Its gRPC socket, bound before the HTTP listener failed, is gone with it.
  CHECK_FALSE(std::filesystem::exists(other.file("coordd.sock")));
  auto again = app::Daemon::start(configIn(other));
  CHECK(again.ok());
}
