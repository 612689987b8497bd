// The cleaner of empty parents: one daemon of the cluster, chosen in the
// "zookeeper-cleaner" election, a bounded number of deletes per pass.
#include <catch2/catch.hpp>
#include <numeric>
#include <regex>

#include "cluster.h"
#include "kazoo.h"

using namespace coordd::e2e;

namespace {

std::unique_ptr<Daemon> cleanerDaemon(const ZooKeeper& zk) {
  return std::make_unique<Daemon>(std::vector<std::string>{"--zookeeper", zk.address() + "/replicante",
                                                           "--session-timeout", "2s", "--cleaner-interval", "300ms",
                                                           "--cleaner-limit", "3"});
}

// Per-pass counts the daemon logged.
std::vector<int> passes(const Daemon& daemon) {
  std::vector<int> counts;
  static const std::regex kPass("cleaner: cycle removed ([0-9]+) of at most 3");
  const std::string log = daemon.log();
  for (std::sregex_iterator it(log.begin(), log.end(), kPass), end; it != end; ++it) {
    counts.push_back(std::stoi((*it)[1]));
  }
  return counts;
}

int sum(const std::vector<int>& v) { return std::accumulate(v.begin(), v.end(), 0); }

std::string nodeIdOf(Daemon& daemon) {
  std::string out = daemon.coordctl({"status", "--json"}).out;
  size_t at = out.find("\"node_id\":\"");
  REQUIRE(at != std::string::npos);
  return out.substr(at + 11, 32);
}

}  // namespace

TEST_CASE("cleaner - one daemon removes empty parents at most limit per pass - a step-down moves the work",
          "[zookeeper][cleaner]") {
  ZooKeeper zk;
  auto d1 = cleanerDaemon(zk);
  auto d2 = cleanerDaemon(zk);
  Kazoo kazoo(zk.address());
  std::string out;
  const std::string make_empty = R"(
import sys
for i in range(int(sys.argv[1])):
    zk.create('/replicante/locks/%s%03d' % (sys.argv[2], i), b'', makepath=True)
)";
  REQUIRE(kazoo.run(make_empty, {"7", "e"}, &out) == 0);

  auto remaining = [&](const std::string& prefix) {
    std::string listing;
    kazoo.run("print(' '.join(zk.get_children('/replicante/locks')))", {}, &listing);
    return std::count(listing.begin(), listing.end(), prefix[0]);
  };
  REQUIRE(eventually([&] { return remaining("e") == 0; }, 20s));

  // One cleaner, and no pass over the limit. (A pass is logged once its
  // deletes are done, so just after ZooKeeper shows them.)
  CHECK(eventually([&] { return sum(passes(*d1)) + sum(passes(*d2)) == 7; }));
  std::vector<int> p1 = passes(*d1), p2 = passes(*d2);
  INFO("passes of d1: " << p1.size() << ", of d2: " << p2.size());
  CHECK((p1.empty() != p2.empty()));
  for (int n : p1) CHECK(n <= 3);
  for (int n : p2) CHECK(n <= 3);
  CHECK(sum(p1) + sum(p2) == 7);
  CHECK(p1.size() + p2.size() >= 3);  // 7 parents at 3 a pass

  // Force the cleaner's primary out: the other daemon takes the work over.
  auto leader = d1->coordctl({"leader", "zookeeper-cleaner", "--json"}).out;
  Daemon& cleaner = leader.find(nodeIdOf(*d1)) != std::string::npos ? *d1 : *d2;
  Daemon& other = &cleaner == d1.get() ? *d2 : *d1;
  REQUIRE(cleaner.coordctl({"elections", "step-down", "zookeeper-cleaner"}).code == 0);
  REQUIRE(eventually(
      [&] {
        return d1->coordctl({"leader", "zookeeper-cleaner", "--json"}).out.find(nodeIdOf(other)) != std::string::npos;
      },
      10s));
  const int before = sum(passes(other));
  REQUIRE(kazoo.run(make_empty, {"2", "s"}, &out) == 0);
  REQUIRE(eventually([&] { return remaining("s") == 0; }, 20s));
  CHECK(eventually([&] { return sum(passes(other)) == before + 2; }));
}
