// The probes follow the ZooKeeper link, and coordinator calls are timed.
#include <catch2/catch.hpp>

#include "coordd/client.h"
#include "harness.h"
#include "probes.h"
#include "zookeeper.h"

using namespace coordd::e2e;

TEST_CASE("probes on ZooKeeper - readyz 503 and gRPC health NOT_SERVING while ZooKeeper is away, ready again after",
          "[zookeeper][metrics]") {
  ZooKeeper zk;
  std::vector<std::string> args{"--zookeeper", zk.address() + "/replicante", "--session-timeout", "10s"};
  for (const auto& flag : observabilityFlags()) args.push_back(flag);
  Daemon daemon(args);
  const ObservabilityEndpoints endpoints = observabilityEndpoints(daemon);
  REQUIRE_FALSE(endpoints.http.empty());
  REQUIRE_FALSE(endpoints.health.empty());
  CHECK(httpGet(endpoints.http, "/readyz").code == 200);
  CHECK(grpcHealth(endpoints.health) == "SERVING");

  // A lock taken and given back is a create and a delete, each timed.
  auto client = coordd::Client::connect(daemon.address()).value();
  coordd::SessionOptions options;
  options.owner = "probe";
  auto session = client->openSession(options);
  REQUIRE(session.ok());
  auto got = (*session)->tryLock("job");
  REQUIRE(got.ok());
  REQUIRE(got->acquired());
  REQUIRE(got->guard->release().ok());
  CHECK(scrape(endpoints.http, "coordd_coordinator_op_duration_seconds_count{op=\"create\"}").value_or(0) >= 1);
  CHECK(scrape(endpoints.http, "coordd_coordinator_op_duration_seconds_count{op=\"delete\"}").value_or(0) >= 1);

  zk.kill();
  // Not ready while in doubt, yet alive: kubelet must not restart it.
  REQUIRE(eventually(
      [&] { return httpGet(endpoints.http, "/readyz").code == 503 && grpcHealth(endpoints.health) == "NOT_SERVING"; },
      10s));
  CHECK(httpGet(endpoints.http, "/readyz").body.find("SUSPENDED") != std::string::npos);
  CHECK(httpGet(endpoints.http, "/healthz").code == 200);
  CHECK(scrape(endpoints.http, "coordd_coordinator_link{state=\"SUSPENDED\"}") == 1.0);

  zk.start();
  REQUIRE(eventually(
      [&] { return httpGet(endpoints.http, "/readyz").code == 200 && grpcHealth(endpoints.health) == "SERVING"; },
      20s));
}
