// /metrics, /healthz, /readyz and the plaintext gRPC health listener, read
// with the clients a monitoring system and kubelet would use.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "coordd/client.h"
#include "harness.h"
#include "open_session.h"
#include "probes.h"

using namespace coordd::e2e;

namespace {

// A daemon with both observability listeners on free ports.
struct ObservedDaemon {
  ObservedDaemon() : daemon(observabilityFlags()), endpoints(observabilityEndpoints(daemon)) {}
  double metric(const std::string& series) const {
    const std::optional<double> value = scrape(endpoints.http, series);
    INFO(series << " in:\n" << httpGet(endpoints.http, "/metrics").body);
    REQUIRE(value.has_value());
    return *value;
  }
  Daemon daemon;
  const ObservabilityEndpoints endpoints;
};

}  // namespace

TEST_CASE("metrics - a scrape shows locks, acquire outcomes, losses and gRPC calls move", "[e2e][metrics]") {
  ObservedDaemon observed;
  REQUIRE_FALSE(observed.endpoints.http.empty());
  auto client = coordd::Client::connect(observed.daemon.address()).value();
  CHECK(observed.metric("coordd_sessions") == 0);
  CHECK(observed.metric("coordd_locks_held") == 0);
  CHECK(observed.metric("coordd_coordinator_link{state=\"CONNECTED\"}") == 1);

  auto a = open(*client, "alpha");
  auto b = open(*client, "beta");
  auto got = a->tryLock("job");
  REQUIRE(got.ok());
  REQUIRE(got->acquired());
  auto refused = b->tryLock("job");
  REQUIRE(refused.ok());
  REQUIRE_FALSE(refused->acquired());
  CHECK(observed.metric("coordd_sessions") == 2);
  CHECK(observed.metric("coordd_locks_held") == 1);
  CHECK(observed.metric("coordd_lock_acquires_total{mode=\"try\",outcome=\"acquired\"}") == 1);
  CHECK(observed.metric("coordd_lock_acquires_total{mode=\"try\",outcome=\"held\"}") == 1);
  CHECK(observed.metric("coordd_grpc_calls_total{method=\"/coordd.v1.Locks/TryAcquire\",code=\"OK\"}") == 2);
  CHECK(observed.metric("coordd_grpc_call_duration_seconds_count{method=\"/coordd.v1.Locks/TryAcquire\"}") == 2);

  auto election = a->campaign("svc", "a:1");
  REQUIRE(election.ok());
  CHECK(observed.metric("coordd_candidacies{status=\"PRIMARY\"}") == 1);

  // An admin takes the lock away: the holder loses it, and the metric says why.
  REQUIRE(observed.daemon.coordctl({"locks", "release", "job"}).code == 0);
  REQUIRE(eventually([&] { return got->guard->state() == coordd::LockState::kLost; }));
  CHECK(observed.metric("coordd_locks_held") == 0);
  CHECK(observed.metric("coordd_locks_lost_total{reason=\"node_deleted\"}") == 1);
}

TEST_CASE("probes - healthz and readyz answer over HTTP, gRPC health over plaintext TCP", "[e2e][metrics]") {
  ObservedDaemon observed;
  REQUIRE_FALSE(observed.endpoints.http.empty());
  REQUIRE_FALSE(observed.endpoints.health.empty());
  CHECK(httpGet(observed.endpoints.http, "/healthz").code == 200);
  const HttpResult ready = httpGet(observed.endpoints.http, "/readyz");
  CHECK(ready.code == 200);
  CHECK(ready.body == "ready\n");
  const HttpResult missing = httpGet(observed.endpoints.http, "/nope");
  CHECK(missing.code == 404);
  CHECK(missing.body.find("/metrics") != std::string::npos);  // says what is served
  CHECK(grpcHealth(observed.endpoints.health) == "SERVING");
}

TEST_CASE("observability listeners - a bad or taken address stops coordd at start naming the setting",
          "[e2e][metrics]") {
  ObservedDaemon first;
  REQUIRE_FALSE(first.endpoints.http.empty());
  TempDir dir;
  Process taken({COORDD_BIN, "--listen", "unix:" + dir.file("c.sock"), "--http", first.endpoints.http}, {},
                dir.file("taken"));
  REQUIRE(taken.wait(10s) == 1);
  CHECK(taken.err().find("http.listen") != std::string::npos);
  Process health_taken(
      {COORDD_BIN, "--listen", "unix:" + dir.file("c.sock"), "--health-listen", first.endpoints.health}, {},
      dir.file("health-taken"));
  REQUIRE(health_taken.wait(10s) == 1);
  CHECK(health_taken.err().find("health.listen") != std::string::npos);
  Process bad({COORDD_BIN, "--listen", "unix:" + dir.file("c.sock"), "--health-listen", "localhost"}, {},
              dir.file("bad"));
  REQUIRE(bad.wait(10s) == 2);
  CHECK(bad.err().find("--health-listen") != std::string::npos);
}

TEST_CASE("logs - a stderr nobody reads does not stall coordination - the lines come once it is read", "[e2e][logs]") {
  // coordd's stderr is a pipe that is opened for reading and never read: a
  // hung log collector. Each lock cycle logs two lines, so a few hundred
  // cycles fill the pipe; a daemon that writes its log on the way of a call
  // would block there, and every later call would time out.
  TempDir dir;
  const std::string fifo = dir.file("stderr.fifo");
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  const int reader = ::open(fifo.c_str(), O_RDONLY | O_NONBLOCK);
  REQUIRE(reader >= 0);
  Daemon daemon({}, Daemon::Wait::kReady, {"/bin/sh", "-c", "exec \"$@\" 2>" + fifo, "sh"});
  auto client = coordd::Client::connect(daemon.address()).value();
  auto session = open(*client, "chatty");
  int cycles = 0;
  for (; cycles < 2000; ++cycles) {
    auto got = session->tryLock("job");
    INFO("cycle " << cycles);
    REQUIRE(got.ok());
    REQUIRE(got->acquired());
    REQUIRE(got->guard->release().ok());
  }
  CHECK(cycles == 2000);

  // Read now: the lines the daemon still has come through.
  std::string log;
  const bool caught_up = eventually([&] {
    char buffer[65536];
    for (ssize_t n; (n = ::read(reader, buffer, sizeof(buffer))) > 0;) log.append(buffer, static_cast<size_t>(n));
    return log.find("lock RELEASED") != std::string::npos;
  });
  ::close(reader);
  CHECK(caught_up);
}
