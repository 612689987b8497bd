// One daemon under load: 1000 client sessions, 10 000 locks, primaries of 100
// elections with candidates on two more daemons; then every client killed at
// once. Prints how long the release took and the daemon's memory.
#include <signal.h>

#include <catch2/catch.hpp>

#include "cluster.h"
#include "coordd/admin.h"
#include "kazoo.h"
#include "load_worker.h"

using namespace coordd::e2e;

namespace {

constexpr int kWorkers = 10;
constexpr int kSessionsPerWorker = 100;
constexpr int kLocksPerSession = 10;
constexpr int kElections = 100;

double secondsSince(int64_t start_us) { return static_cast<double>(monotonicMicros() - start_us) / 1e6; }

}  // namespace

TEST_CASE("load - 1000 sessions 10000 locks 100 elections on one daemon - all clients killed at once - all released",
          "[zookeeper][load]") {
  ZooKeeper zk;
  const std::string ensemble = zk.address() + "/replicante";
  auto loaded = zkDaemon(ensemble, "10s");
  auto b = zkDaemon(ensemble, "10s");
  auto c = zkDaemon(ensemble, "10s");
  const pid_t daemon_pid = loaded->process().pid();
  const int64_t idle_kib = rssKiB(daemon_pid);

  TempDir dir;
  const std::string ready = dir.file("ready");
  const int64_t start = monotonicMicros();
  std::vector<std::unique_ptr<Process>> workers;
  for (int w = 0; w < kWorkers; ++w) {
    workers.push_back(
        std::make_unique<Process>(loadWorkerCommand(loaded->address(), w * kSessionsPerWorker, kSessionsPerWorker,
                                                    kLocksPerSession, kElections, ready),
                                  std::map<std::string, std::string>{}, dir.file("worker-" + std::to_string(w))));
  }
  REQUIRE(eventually(
      [&] {
        for (auto& worker : workers) {
          if (!worker->running()) return true;  // failed: checked below
        }
        return readLines(ready).size() == kWorkers;
      },
      300s));
  for (auto& worker : workers) {
    const std::string log = loaded->log();
    INFO("a worker exited during setup: " << worker->err() << "\nthe daemon's log ends:\n"
                                          << log.substr(log.size() > 4000 ? log.size() - 4000 : 0));
    REQUIRE(worker->running());
  }
  const double setup_s = secondsSince(start);

  // The other candidates, one session on each of the two other daemons.
  std::vector<std::unique_ptr<coordd::Client>> clients(2);
  std::vector<std::unique_ptr<coordd::Session>> sessions;
  std::vector<std::unique_ptr<coordd::Election>> candidacies;
  Daemon* others[] = {b.get(), c.get()};
  for (int d = 0; d < 2; ++d) {
    sessions.push_back(openSession(*others[d], clients[d], "standby"));
    for (int e = 0; e < kElections; ++e) {
      auto candidacy = sessions.back()->campaign(loadElection(e), "standby");
      REQUIRE(candidacy.ok());
      CHECK_FALSE((*candidacy)->isPrimary());
      candidacies.push_back(std::move(*candidacy));
    }
  }
  auto admin_client = coordd::Client::connect(loaded->address()).value();
  auto status = admin_client->admin().status();
  REQUIRE(status.ok());
  CHECK(status->sessions() == kWorkers * kSessionsPerWorker);
  CHECK(status->locks_held() == kWorkers * kSessionsPerWorker * kLocksPerSession);
  const int64_t loaded_kib = rssKiB(daemon_pid);

  const int64_t killed_at = monotonicMicros();
  for (auto& worker : workers) worker->signal(SIGKILL);
  const std::string b_node = sessions[0]->nodeId();
  const std::string c_node = sessions[1]->nodeId();
  auto elsewhere = [&](int e) {
    auto leader = clients[0]->leader(loadElection(e));
    return leader.ok() && leader->has_value() &&
           ((*leader)->owner.node_id == b_node || (*leader)->owner.node_id == c_node);
  };
  REQUIRE(eventually(
      [&] {
        auto now = admin_client->admin().status();
        if (!now.ok() || now->locks_held() != 0 || now->sessions() != 0) return false;
        for (int e = 0; e < kElections; ++e) {
          if (!elsewhere(e)) return false;
        }
        return true;
      },
      60s * kBuildSlowdown));
  const double released_ms = secondsSince(killed_at) * 1000;
  int primaries = 0;
  for (const auto& candidacy : candidacies) primaries += candidacy->isPrimary() ? 1 : 0;
  CHECK(primaries == kElections);

  // Nothing of the dead sessions is left in ZooKeeper: no lock node, and only
  // the two standby candidates in each election, plus one per daemon in the
  // cleaner's election. (The daemon forgets a session at once and deletes
  // its nodes right after: give the deletes a moment.)
  const std::string expected = "0 " + std::to_string(2 * kElections + 3) + "\n";
  std::string out;
  Kazoo kazoo(zk.address());
  CHECK(eventually(
      [&] {
        return kazoo.run(R"(
locks = sum(len(zk.get_children('/replicante/locks/' + b)) for b in zk.get_children('/replicante/locks'))
candidates = sum(len(zk.get_children('/replicante/elections/' + e)) for e in zk.get_children('/replicante/elections'))
print(locks, candidates)
)",
                         {}, &out) == 0 &&
               out == expected;
      },
      30s * kBuildSlowdown));
  INFO("lock nodes and candidates left: " << out);
  const double clean_ms = secondsSince(killed_at) * 1000;

  std::printf(
      "[measure] load: %d sessions, %d locks, %d elections set up on one daemon in %.1f s; after kill -9 of every "
      "client: the daemon ended every session and %d new primaries were on the other daemons in %.0f ms, and "
      "ZooKeeper held no node of theirs after %.0f ms (polled by kazoo, ~0.5 s a look); daemon RSS %.1f MiB idle, "
      "%.1f MiB loaded (%.0f bytes per lock, sessions included)\n",
      kWorkers * kSessionsPerWorker, kWorkers * kSessionsPerWorker * kLocksPerSession, kElections, setup_s, primaries,
      released_ms, clean_ms, static_cast<double>(idle_kib) / 1024.0, static_cast<double>(loaded_kib) / 1024.0,
      static_cast<double>((loaded_kib - idle_kib) * 1024) / (kWorkers * kSessionsPerWorker * kLocksPerSession));
}
