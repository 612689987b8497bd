// `coordctl lock|elect -- CMD` on two daemons sharing one ZooKeeper: when the
// holder's side fails, the old CMD tree is gone before the next holder's CMD
// starts. Every CMD is a shell script that stamps CLOCK_REALTIME into a file
// every 50 ms from each of its processes; the gap between the old tree's last
// stamp and the new holder's first must be positive.
#include <dirent.h>
#include <signal.h>

#include <catch2/catch.hpp>
#include <fstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "cluster.h"

using namespace coordd::e2e;

namespace {

// CMD: `sh guarded.sh FILE MODE`.
//   plain        stamps until killed
//   slow-term    on SIGTERM goes on stamping for 3 s, then exits 0
//   ignore-term  ignores SIGTERM
//   background   a background worker stamps; CMD itself only waits
//   setsid       the same, with the worker in a session of its own
constexpr char kScript[] = R"(f=$1
stamp_loop() { while :; do date +%s%N >> "$f"; sleep 0.05; done; }
case $2 in
  plain) stamp_loop ;;
  ignore-term) trap '' TERM; stamp_loop ;;
  slow-term)
    stopping=0; n=0
    trap 'stopping=1' TERM
    while :; do
      date +%s%N >> "$f"; sleep 0.05
      if [ $stopping = 1 ]; then n=$((n+1)); [ $n -ge 60 ] && exit 0; fi
    done ;;
  background) sh "$0" "$f" plain & wait ;;
  setsid) setsid sh "$0" "$f" plain & wait ;;
esac
)";

// Everything a guard test needs: the script, the two files, and at the end
// no process left that runs the script (whatever the build under test did).
class Scene {
 public:
  Scene() { std::ofstream(dir_.file("guarded.sh")) << kScript; }
  ~Scene() { killLeftovers(); }

  std::vector<std::string> cmd(const std::string& file, const std::string& mode) const {
    return {"/bin/sh", dir_.file("guarded.sh"), dir_.file(file), mode};
  }
  std::vector<int64_t> stamps(const std::string& file) const {
    std::vector<int64_t> out;
    for (const auto& line : readLines(dir_.file(file))) {
      int64_t ns = 0;
      if (absl::SimpleAtoi(line, &ns)) out.push_back(ns);
    }
    return out;
  }
  // Processes whose command line names this scene's directory: the script's.
  std::vector<pid_t> scriptProcesses() const {
    std::vector<pid_t> pids;
    DIR* proc = ::opendir("/proc");
    while (dirent* entry = proc ? ::readdir(proc) : nullptr) {
      int pid = 0;
      if (!absl::SimpleAtoi(entry->d_name, &pid)) continue;
      std::string cmdline = readFile(absl::StrCat("/proc/", pid, "/cmdline"));
      if (cmdline.find(dir_.path()) != std::string::npos) pids.push_back(pid);
    }
    if (proc) ::closedir(proc);
    return pids;
  }

 private:
  void killLeftovers() const {
    for (pid_t pid : scriptProcesses()) ::kill(pid, SIGKILL);
  }

  TempDir dir_;
};

enum class Failure { kDaemonFrozen, kCoordctlKilled, kCoordctlFrozen };

const char* nameOf(Failure failure) {
  switch (failure) {
    case Failure::kDaemonFrozen:
      return "holder's coordd frozen";
    case Failure::kCoordctlKilled:
      return "holder's coordctl killed";
    case Failure::kCoordctlFrozen:
      return "holder's coordctl frozen";
  }
  return "";
}

// What happened to the old holder and the new one.
struct Outcome {
  double gap_ms = 0;            // new first stamp - old last stamp
  std::optional<int> old_code;  // the old coordctl's exit code, once resumed
  std::string old_err;
};

// Runs the old holder (A, on d1) and the next one (B, on d2) under
// `command` ("lock" or "elect"), makes `failure` happen to A, and measures.
Outcome handOver(const std::string& command, Failure failure, const std::string& mode) {
  ZooKeeper zk;
  // W = 2 s: the lease is 2/3 of it, the margin after it 1/3.
  auto d1 = zkDaemon(zk.address() + "/replicante", "2s");
  auto d2 = zkDaemon(zk.address() + "/replicante", "2s");
  Scene scene;
  const std::vector<std::string> ttl = {"--ttl", "2s"};
  auto args = [&](const std::vector<std::string>& extra, const std::vector<std::string>& cmd) {
    std::vector<std::string> out = {command, "guarded"};
    out.insert(out.end(), ttl.begin(), ttl.end());
    out.insert(out.end(), extra.begin(), extra.end());
    out.push_back("--");
    out.insert(out.end(), cmd.begin(), cmd.end());
    return out;
  };
  auto a = d1->startCoordctl(args({}, scene.cmd("a", mode)));
  REQUIRE(eventually([&] { return scene.stamps("a").size() >= 2; }, 10s));
  std::unique_ptr<Process> b;
  if (command == "lock") {
    b = d2->startCoordctl(args({"--wait", "60s"}, scene.cmd("b", "plain")));
    REQUIRE(eventually(
        [&] {
          return d1->coordctl({"locks", "info", "guarded", "--json"}).out.find("waiters\":[{") != std::string::npos;
        },
        10s));
  } else {
    b = d2->startCoordctl(args({}, scene.cmd("b", "plain")));
    REQUIRE(eventually([&] { return b->err().find("secondary") != std::string::npos; }, 10s));
  }
  REQUIRE(scene.stamps("b").empty());

  switch (failure) {
    case Failure::kDaemonFrozen:
      d1->process().signal(SIGSTOP);
      break;
    case Failure::kCoordctlKilled:
      a->signal(SIGKILL);
      break;
    case Failure::kCoordctlFrozen:
      a->signal(SIGSTOP);
      break;
  }
  if (!eventually([&] { return !scene.stamps("b").empty(); }, 30s))
    FAIL("B never ran CMD.\nA: " << a->err() << "\nB: " << b->err());
  // Long enough for a survivor of the old tree to show: until the old file
  // has been still for a second, at most 6 s.
  const auto until = std::chrono::steady_clock::now() + 6s;
  size_t seen = scene.stamps("a").size();
  auto still_since = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() < until && std::chrono::steady_clock::now() - still_since < 1s) {
    std::this_thread::sleep_for(50ms);
    const size_t now = scene.stamps("a").size();
    if (now != seen) {
      seen = now;
      still_since = std::chrono::steady_clock::now();
    }
  }
  Outcome outcome;
  outcome.gap_ms = static_cast<double>(scene.stamps("b").front() - scene.stamps("a").back()) / 1e6;
  std::printf("[measure] guard: %s %s, CMD %s: old tree's last stamp %.1f ms before the new holder's first\n",
              command.c_str(), nameOf(failure), mode.c_str(), outcome.gap_ms);

  if (failure == Failure::kDaemonFrozen) d1->process().signal(SIGCONT);
  if (failure == Failure::kCoordctlFrozen) a->signal(SIGCONT);
  if (failure != Failure::kCoordctlKilled) outcome.old_code = a->wait(command == "lock" ? 15s : 0s);
  outcome.old_err = a->err();
  return outcome;
}

}  // namespace

TEST_CASE("coordctl lock: a frozen coordd - the old CMD, slow to stop, is gone before the next holder starts",
          "[zookeeper][guard]") {
  const Outcome outcome = handOver("lock", Failure::kDaemonFrozen, "slow-term");
  INFO(outcome.old_err);
  CHECK(outcome.gap_ms > 0);
  CHECK(outcome.old_code == 76);
}

TEST_CASE("coordctl lock: kill -9 of coordctl - CMD's background worker is gone before the next holder starts",
          "[zookeeper][guard]") {
  CHECK(handOver("lock", Failure::kCoordctlKilled, "background").gap_ms > 0);
}

TEST_CASE("coordctl lock: kill -9 of coordctl - CMD, slow to stop, is gone before the next holder starts",
          "[zookeeper][guard]") {
  // The watchdog gives CMD what is left of the margin: coordd must keep the
  // lock until the watchdog has exited, not free it when coordctl's stream
  // breaks.
  CHECK(handOver("lock", Failure::kCoordctlKilled, "slow-term").gap_ms > 0);
}

TEST_CASE("coordctl lock: a frozen coordctl - CMD is gone before the next holder starts", "[zookeeper][guard]") {
  const Outcome outcome = handOver("lock", Failure::kCoordctlFrozen, "plain");
  INFO(outcome.old_err);
  CHECK(outcome.gap_ms > 0);
  CHECK(outcome.old_code == 76);
}

TEST_CASE("coordctl lock: a CMD that ignores SIGTERM is killed in time", "[zookeeper][guard]") {
  const Outcome outcome = handOver("lock", Failure::kCoordctlFrozen, "ignore-term");
  INFO(outcome.old_err);
  CHECK(outcome.gap_ms > 0);
  CHECK(outcome.old_code == 76);
}

TEST_CASE("coordctl lock: a grandchild in a session of its own is found and ended", "[zookeeper][guard]") {
  CHECK(handOver("lock", Failure::kCoordctlKilled, "setsid").gap_ms > 0);
}

TEST_CASE("coordctl elect: a frozen coordd - the old CMD, slow to stop, is gone before the next primary starts",
          "[zookeeper][guard]") {
  const Outcome outcome = handOver("elect", Failure::kDaemonFrozen, "slow-term");
  CHECK(outcome.gap_ms > 0);
}

TEST_CASE("coordctl elect: kill -9 of coordctl - CMD's background worker is gone before the next primary starts",
          "[zookeeper][guard]") {
  CHECK(handOver("elect", Failure::kCoordctlKilled, "background").gap_ms > 0);
}

TEST_CASE("coordctl elect: kill -9 of coordctl - CMD, slow to stop, is gone before the next primary starts",
          "[zookeeper][guard]") {
  CHECK(handOver("elect", Failure::kCoordctlKilled, "slow-term").gap_ms > 0);
}

TEST_CASE("coordctl elect: a frozen coordctl - CMD is gone before the next primary starts", "[zookeeper][guard]") {
  CHECK(handOver("elect", Failure::kCoordctlFrozen, "plain").gap_ms > 0);
}

TEST_CASE("coordctl elect: a CMD that ignores SIGTERM is killed in time", "[zookeeper][guard]") {
  CHECK(handOver("elect", Failure::kCoordctlFrozen, "ignore-term").gap_ms > 0);
}

TEST_CASE("coordctl elect: a grandchild in a session of its own is found and ended", "[zookeeper][guard]") {
  CHECK(handOver("elect", Failure::kCoordctlKilled, "setsid").gap_ms > 0);
}
