#include "scenario.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <ostream>
#include <random>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "harness.h"
#include "zookeeper.h"

namespace coordd::faults {
namespace {

using e2e::Daemon;
using e2e::monotonicMicros;
using e2e::Process;
using e2e::ZooKeeper;
using namespace std::chrono_literals;

constexpr int64_t kTickMs = 100;  // the harness's ZooKeeper tickTime
constexpr char kHostAddress[] = "10.213.0.1";
constexpr char kNamespaceAddress[] = "10.213.0.2";

bool run(const std::string& command) { return std::system((command + " >/dev/null 2>&1").c_str()) == 0; }

std::string output(const std::string& command) {
  std::string out;
  if (FILE* pipe = ::popen(command.c_str(), "r")) {
    char buffer[256];
    while (std::fgets(buffer, sizeof(buffer), pipe) != nullptr) out += buffer;
    ::pclose(pipe);
  }
  return out;
}

// A network namespace joined to this one by a veth pair; cutting the host
// end partitions whatever runs inside from everything outside.
class Partition {
 public:
  Partition() : name_(absl::StrCat("coordd-faults-", getpid())), veth_(absl::StrCat("cf", getpid() % 100000, "h")) {
    const std::string inner = absl::StrCat("cf", getpid() % 100000, "n");
    if (geteuid() != 0) {
      note_ = "not root: network namespaces need CAP_NET_ADMIN";
      return;
    }
    removeAbandoned();
    available_ = run("ip netns add " + name_) && run("ip link add " + veth_ + " type veth peer name " + inner) &&
                 run("ip link set " + inner + " netns " + name_) &&
                 run(absl::StrCat("ip addr add ", kHostAddress, "/30 dev ", veth_)) &&
                 run("ip link set " + veth_ + " up") &&
                 run(absl::StrCat("ip netns exec ", name_, " ip addr add ", kNamespaceAddress, "/30 dev ", inner)) &&
                 run("ip netns exec " + name_ + " ip link set " + inner + " up") &&
                 run("ip netns exec " + name_ + " ip link set lo up");
    if (!available_) note_ = "`ip netns`/veth failed on this machine (iproute2 missing or no CAP_NET_ADMIN)";
  }
  ~Partition() {
    run("ip link del " + veth_);
    run("ip netns del " + name_);
  }
  bool available() const { return available_; }
  const std::string& note() const { return note_; }
  std::vector<std::string> launcher() const { return {"/bin/ip", "netns", "exec", name_}; }
  void cut() { run("ip link set " + veth_ + " down"); }
  void heal() { run("ip link set " + veth_ + " up"); }

 private:
  // Namespaces of runs that died without cleaning up hold the same subnet;
  // deleting one deletes its veth pair too.
  static void removeAbandoned() {
    for (absl::string_view line : absl::StrSplit(output("ip netns list 2>/dev/null"), '\n')) {
      absl::string_view name = line.substr(0, line.find(' '));
      int pid = 0;
      if (absl::ConsumePrefix(&name, "coordd-faults-") && absl::SimpleAtoi(name, &pid) && ::kill(pid, 0) != 0) {
        run(absl::StrCat("ip netns del coordd-faults-", pid));
      }
    }
  }

  const std::string name_;
  const std::string veth_;
  bool available_ = false;
  std::string note_;
};

class Scenario {
 public:
  Scenario(const ScenarioConfig& config, std::ostream& progress)
      : config_(config), progress_(progress), rng_(config.seed) {}

  RunRecord run() {
    setUp();
    if (config_.unsafe) {
      unsafeFaults();
    } else {
      randomFaults();
    }
    // Whatever the last fault took away must have time to go elsewhere.
    const Bounds& b = record_.bounds;
    std::this_thread::sleep_for(std::chrono::milliseconds(b.session_timeout_ms + b.tick_ms + b.delivery_ms) + 1s);
    return finish();
  }

 private:
  struct Slot {
    ClientRecord record;
    std::unique_ptr<Process> process;
  };

  void setUp() {
    record_.bounds = Bounds{config_.session_timeout.count(), kTickMs, config_.client_ttl.count(), 500};
    record_.partition_note = partition_.available() ? "" : partition_.note();
    servers_ = ZooKeeper::ensemble(3, partition_.available());
    const std::string chroot = "/faults";
    const std::string timeout = absl::StrCat(config_.session_timeout.count(), "ms");
    for (int i = 0; i < 3; ++i) {
      const bool isolated = i == 2 && partition_.available();
      std::string ensemble = ZooKeeper::connectString(servers_, chroot);
      if (isolated) {
        std::vector<std::string> hosts;
        for (auto& server : servers_) hosts.push_back(absl::StrCat(kHostAddress, ":", server->clientPort()));
        ensemble = absl::StrCat(absl::StrJoin(hosts, ","), chroot);
      }
      daemons_.push_back(std::make_unique<Daemon>(
          std::vector<std::string>{"--zookeeper", ensemble, "--session-timeout", timeout, "--log-level", "info"},
          Daemon::Wait::kReady, isolated ? partition_.launcher() : std::vector<std::string>{}));
    }
    resource_ = std::make_unique<FencedResource>(dir_.file("resource.sock"));
    const int total = config_.lock_clients + config_.election_clients;
    for (int slot = 0; slot < total; ++slot) {
      Slot s;
      ClientConfig& c = s.record.config;
      c.slot = slot;
      const bool lock = slot < config_.lock_clients;
      c.role = lock ? ClientConfig::Role::kLock : ClientConfig::Role::kElection;
      c.name = lock ? (slot % 2 == 0 ? "alpha" : "beta") : (slot % 2 == 0 ? "svc-b" : "svc-a");
      s.record.daemon = slot % 3;
      c.address = daemons_[static_cast<size_t>(s.record.daemon)]->address();
      c.resource = resource_->path();
      c.ttl_ms = config_.client_ttl.count();
      c.unsafe = config_.unsafe && (slot == 0 || slot == config_.lock_clients);
      c.seed = config_.seed * 1000 + static_cast<uint64_t>(slot);
      slots_.push_back(std::move(s));
      startClient(slots_.back());
    }
    progress_ << "cluster up: 3 ZooKeeper servers, 3 daemons"
              << (partition_.available() ? " (daemon 2 in its own network namespace)" : "") << ", " << total
              << " clients" << std::endl;
    std::this_thread::sleep_for(1s);  // let every client get going
  }

  void startClient(Slot& slot) {
    const int n = static_cast<int>(slot.record.lives.size());
    ClientConfig config = slot.record.config;
    config.log = dir_.file(absl::StrCat("client-", config.slot, "-", n, ".log"));
    config.seed += static_cast<uint64_t>(n) * 7919;
    slot.process = std::make_unique<Process>(clientCommand(config), std::map<std::string, std::string>{},
                                             dir_.file(absl::StrCat("client-", config.slot, "-", n)));
    slot.record.lives.push_back(Incarnation{config.log, monotonicMicros(), 0, {}});
  }

  int64_t randomMs(int64_t low, int64_t high) { return std::uniform_int_distribution<int64_t>(low, high)(rng_); }
  template <typename T>
  size_t pick(const std::vector<T>& items) {
    return static_cast<size_t>(randomMs(0, static_cast<int64_t>(items.size()) - 1));
  }

  void randomFaults() {
    std::vector<FaultKind> deck = allFaults();
    std::shuffle(deck.begin(), deck.end(), rng_);
    std::optional<std::chrono::steady_clock::time_point> stop_at;
    for (size_t i = 0;; ++i) {
      if (i == deck.size()) {  // a full round of every kind is done
        stop_at = std::chrono::steady_clock::now() + config_.extra_time;
        std::shuffle(deck.begin(), deck.end(), rng_);
      }
      if (stop_at && std::chrono::steady_clock::now() >= *stop_at) break;
      std::this_thread::sleep_for(
          std::chrono::milliseconds(randomMs(config_.min_gap.count(), config_.max_gap.count())));
      inject(deck[i % deck.size()], std::nullopt);
    }
  }

  // Aims at the unsafe clients once they hold (which they then do to the
  // end): the lock client is paused past its ttl, the election client's
  // daemon past the session timeout.
  void unsafeFaults() {
    for (int round = 0; round < 2; ++round) {
      for (int slot : {0, config_.lock_clients}) {
        Slot& s = slots_[static_cast<size_t>(slot)];
        if (!waitUntilBelieving(s, 20s)) {
          progress_ << "unsafe client " << slot << " never got to hold; nothing aimed at it" << std::endl;
          continue;
        }
        inject(slot == 0 ? FaultKind::kClientStop : FaultKind::kDaemonStop, slot);
        std::this_thread::sleep_for(1s);
      }
    }
  }

  // Whether the client's log says it holds its lock or is primary now.
  static bool believing(const Slot& slot) {
    auto lines = readClientLog(slot.record.lives.back().log);
    for (auto it = lines.rbegin(); it != lines.rend(); ++it) {
      if (it->kind == "begin") return true;
      if (it->kind == "end") return false;
    }
    return false;
  }

  bool waitUntilBelieving(const Slot& slot, std::chrono::milliseconds timeout) {
    return e2e::eventually([&] { return believing(slot); }, timeout);
  }

  // A client that holds something now, so that the fault takes it away and
  // the release is measured; any client if none does.
  size_t pickHolder() {
    std::vector<size_t> holders;
    for (size_t i = 0; i < slots_.size(); ++i) {
      if (believing(slots_[i])) holders.push_back(i);
    }
    return holders.empty() ? pick(slots_) : holders[pick(holders)];
  }

  // The client a fault hits: `at_client`, else one that holds something.
  Slot& aimAtClient(FaultRecord& fault, std::optional<int> at_client) {
    Slot& slot = slots_[at_client ? static_cast<size_t>(*at_client) : pickHolder()];
    fault.client = slot.record.config.slot;
    fault.target = absl::StrCat("client ", fault.client);
    fault.start_us = monotonicMicros();
    return slot;
  }

  // Injects one fault, waits out its duration, undoes it and waits until
  // every daemon serves again.
  void inject(FaultKind kind, std::optional<int> at_client) {
    FaultRecord fault;
    fault.kind = kind;
    fault.start_us = monotonicMicros();
    const auto timeout = config_.session_timeout;
    switch (kind) {
      case FaultKind::kClientKill: {
        Slot& slot = aimAtClient(fault, at_client);
        slot.process->signal(SIGKILL);
        slot.process->wait(5s);
        slot.record.lives.back().killed_us = fault.start_us;
        std::this_thread::sleep_for(300ms);
        startClient(slot);
        break;
      }
      case FaultKind::kClientStop: {
        Slot& slot = aimAtClient(fault, at_client);
        slot.process->signal(SIGSTOP);
        std::this_thread::sleep_for(config_.client_ttl + 1s);
        slot.process->signal(SIGCONT);
        slot.record.stops.emplace_back(fault.start_us, monotonicMicros());
        break;
      }
      case FaultKind::kDaemonKill: {
        fault.daemon = slots_[pickHolder()].record.daemon;
        fault.target = absl::StrCat("daemon ", fault.daemon);
        fault.start_us = monotonicMicros();
        daemons_[static_cast<size_t>(fault.daemon)]->kill();
        std::this_thread::sleep_for(1s);
        daemons_[static_cast<size_t>(fault.daemon)]->restart(Daemon::Wait::kListening);
        break;
      }
      case FaultKind::kDaemonStop: {
        fault.daemon = slots_[at_client ? static_cast<size_t>(*at_client) : pickHolder()].record.daemon;
        fault.target = absl::StrCat("daemon ", fault.daemon);
        fault.start_us = monotonicMicros();
        daemons_[static_cast<size_t>(fault.daemon)]->process().signal(SIGSTOP);
        std::this_thread::sleep_for(timeout + 1500ms);
        daemons_[static_cast<size_t>(fault.daemon)]->process().signal(SIGCONT);
        break;
      }
      case FaultKind::kLeaderStop:
      case FaultKind::kFollowerStop:
      case FaultKind::kLeaderKill:
      case FaultKind::kFollowerKill: {
        const bool leader = kind == FaultKind::kLeaderStop || kind == FaultKind::kLeaderKill;
        const bool kill = kind == FaultKind::kLeaderKill || kind == FaultKind::kFollowerKill;
        std::vector<size_t> candidates;
        for (size_t i = 0; i < servers_.size(); ++i) {
          if (servers_[i]->mode() == (leader ? "leader" : "follower")) candidates.push_back(i);
        }
        if (candidates.empty()) {
          fault.injected = false;
          fault.note = "no server in that role";
          break;
        }
        ZooKeeper& server = *servers_[candidates[pick(candidates)]];
        fault.target = absl::StrCat("ZooKeeper ", leader ? "leader" : "follower", " :", server.clientPort());
        fault.start_us = monotonicMicros();
        if (kill) {
          server.kill();
          std::this_thread::sleep_for(1500ms);
          ZooKeeper::startTogether(servers_);
        } else {
          server.signal(SIGSTOP);
          std::this_thread::sleep_for(timeout + 1s);
          server.signal(SIGCONT);
        }
        break;
      }
      case FaultKind::kEnsembleRestart:
        fault.target = "all 3 ZooKeeper servers";
        for (auto& server : servers_) server->kill();
        std::this_thread::sleep_for(500ms);
        ZooKeeper::startTogether(servers_);
        break;
      case FaultKind::kPartition:
        if (!partition_.available()) {
          fault.injected = false;
          fault.note = partition_.note();
          break;
        }
        fault.daemon = 2;
        fault.target = "daemon 2 cut off from the ensemble";
        fault.start_us = monotonicMicros();
        partition_.cut();
        std::this_thread::sleep_for(timeout + 1500ms);
        partition_.heal();
        break;
    }
    fault.end_us = monotonicMicros();
    progress_ << "fault " << faultName(kind) << ": " << (fault.injected ? fault.target : "skipped, " + fault.note)
              << std::endl;
    record_.faults.push_back(fault);
    settle();
  }

  // Waits until every daemon serves again.
  void settle() {
    for (auto& daemon : daemons_) {
      if (!e2e::eventually([&] { return daemon->coordctl({"status"}, 5s).code == 0; }, 60s)) {
        progress_ << "a daemon did not come back:\n" << daemon->log() << std::endl;
      }
    }
  }

  RunRecord finish() {
    record_.end_us = monotonicMicros();
    for (auto& slot : slots_) slot.process->signal(SIGTERM);
    for (auto& slot : slots_) {
      if (!slot.process->wait(10s)) slot.process->signal(SIGKILL);
    }
    record_.writes = resource_->writes();
    for (auto& slot : slots_) {
      for (auto& life : slot.record.lives) life.lines = readClientLog(life.log);
      record_.clients.push_back(slot.record);
    }
    return record_;
  }

  const ScenarioConfig config_;
  std::ostream& progress_;
  std::mt19937_64 rng_;
  e2e::TempDir dir_;
  Partition partition_;
  std::vector<std::unique_ptr<ZooKeeper>> servers_;
  std::vector<std::unique_ptr<Daemon>> daemons_;
  std::unique_ptr<FencedResource> resource_;
  std::vector<Slot> slots_;
  RunRecord record_;
};

}  // namespace

const char* faultName(FaultKind kind) {
  switch (kind) {
    case FaultKind::kClientKill:
      return "client kill -9";
    case FaultKind::kClientStop:
      return "client SIGSTOP past ttl";
    case FaultKind::kDaemonKill:
      return "daemon kill -9 + restart";
    case FaultKind::kDaemonStop:
      return "daemon SIGSTOP past session timeout";
    case FaultKind::kLeaderStop:
      return "ZooKeeper leader SIGSTOP";
    case FaultKind::kLeaderKill:
      return "ZooKeeper leader kill -9";
    case FaultKind::kFollowerStop:
      return "ZooKeeper follower SIGSTOP";
    case FaultKind::kFollowerKill:
      return "ZooKeeper follower kill -9";
    case FaultKind::kEnsembleRestart:
      return "whole ensemble restart";
    case FaultKind::kPartition:
      return "daemon partitioned from ZooKeeper";
  }
  return "?";
}

std::vector<FaultKind> allFaults() {
  return {FaultKind::kClientKill,      FaultKind::kClientStop, FaultKind::kDaemonKill,   FaultKind::kDaemonStop,
          FaultKind::kLeaderStop,      FaultKind::kLeaderKill, FaultKind::kFollowerStop, FaultKind::kFollowerKill,
          FaultKind::kEnsembleRestart, FaultKind::kPartition};
}

RunRecord runScenario(const ScenarioConfig& config, std::ostream& progress) { return Scenario(config, progress).run(); }

}  // namespace coordd::faults
