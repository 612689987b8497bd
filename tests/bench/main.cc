// coordd-bench: coordd next to the systems its users would pick instead, on
// the same workloads in one run, printed as one table with the ratios and
// targets of issue 5 (`coordd-bench --help`). This file only wires: the
// drivers, the workloads and the report live beside it.
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "coordd_driver.h"
#include "coordd_workloads.h"
#include "etcd.h"
#include "harness.h"
#include "lock_command.h"
#include "lock_cycle.h"
#include "report.h"
#include "zk_driver.h"
#include "zookeeper.h"

using namespace coordd::bench;
namespace e2e = coordd::e2e;

namespace {

constexpr char kUsage[] = R"(usage: coordd-bench [--quick] [--out DIR] [--only WORKLOAD,...]

Starts its own ZooKeeper, etcd and coordd daemons and compares coordd on
ZooKeeper, coordd on its embedded coordinator, the ZooKeeper C client used
directly and etcd's lock service on the same workloads. Prints one table and
writes it to DIR/bench.md and DIR/bench.json (DIR: the current directory).

  --quick   shorter points and fewer trials (about a minute and a half)
  --only    some of: lock-cycle, contended, lock-command, local-calls, failover,
            memory
)";

constexpr int kPrewarmClients = 16;

const std::set<std::string> kWorkloads = {"lock-cycle",  "contended", "lock-command",
                                          "local-calls", "failover",  "memory"};

struct Options {
  bool quick = false;
  std::string out = ".";
  std::set<std::string> only = kWorkloads;
};

std::optional<Options> parse(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::cout << kUsage;
      std::exit(0);
    } else if (arg == "--quick") {
      options.quick = true;
    } else if (arg == "--out" && i + 1 < argc) {
      options.out = argv[++i];
    } else if (arg == "--only" && i + 1 < argc) {
      std::set<std::string> only = absl::StrSplit(argv[++i], ',');
      for (const std::string& w : only) {
        if (kWorkloads.count(w) == 0) return std::nullopt;
      }
      options.only = std::move(only);
    } else {
      return std::nullopt;
    }
  }
  return options;
}

Settings settingsFor(bool quick) {
  Settings s;
  s.quick = quick;
  s.prewarm_ms = quick ? 1000 : 4000;
  s.warmup_ms = quick ? 300 : 1000;
  s.measure_ms = quick ? 1500 : 6000;
  s.clients = {1, 16, 64, 256};
  s.contended_clients = 64;
  s.contended_locks = 4;
  s.command_runs = quick ? 5 : 10;
  s.local_calls = quick ? 5000 : 20000;
  s.failover_trials = quick ? 10 : 50;
  s.etcd_failover_trials = quick ? 3 : 10;
  // 100 sessions x 100 locks stays within the default limits (1024 sessions,
  // 1024 holds per session).
  s.memory_sessions = 100;
  s.memory_locks_per_session = 100;
  return s;
}

Clock::time_point run_start;

// Progress on stderr; the table goes to stdout.
void progress(const std::string& line) {
  std::cerr << absl::StrFormat("[%4.0f s] ", micros(run_start, Clock::now()) / 1e6) << line << std::endl;
}

// "3.8.0" from "Zookeeper version: 3.8.0-<git id>, built on <date>".
std::string zooKeeperVersion(const e2e::ZooKeeper& zk) {
  const std::string srvr = e2e::fourLetter(zk.clientPort(), "srvr");
  absl::string_view line = absl::StripPrefix(absl::string_view(srvr).substr(0, srvr.find('\n')), "Zookeeper version: ");
  return std::string(line.substr(0, line.find_first_of("-,")));
}

std::vector<std::string> zkDaemonArgs(const e2e::ZooKeeper& zk, const std::string& chroot) {
  return {"--zookeeper", zk.address() + chroot, "--session-timeout", "10s"};
}

// The lock services every lock workload drives: coordd on each coordinator
// and the peers.
std::map<System, std::unique_ptr<TryLockDriver>> lockServices(const e2e::Daemon& coordd_zk,
                                                              const e2e::Daemon& coordd_embedded,
                                                              const e2e::ZooKeeper& zk, const EtcdServer& etcd) {
  std::map<System, std::unique_ptr<TryLockDriver>> drivers;
  drivers[System::kCoorddZk] = std::make_unique<CoorddLockDriver>(coordd_zk.address());
  drivers[System::kCoorddEmbedded] = std::make_unique<CoorddLockDriver>(coordd_embedded.address());
  drivers[System::kZkDirect] = std::make_unique<ZkDirectLockDriver>(zk.address());
  drivers[System::kEtcd] = std::make_unique<EtcdLockDriver>(etcd.endpoint());
  return drivers;
}

int run(const Options& options) {
  run_start = Clock::now();
  Results results;
  results.machine = describeMachine();
  results.settings = settingsFor(options.quick);
  const Settings& s = results.settings;
  auto wants = [&](const std::string& workload) { return options.only.count(workload) > 0; };

  e2e::ZooKeeper zk;
  EtcdServer etcd;
  results.versions = {{"coordd", COORDD_VERSION},
                      {"ZooKeeper", zooKeeperVersion(zk)},
                      {"etcd", EtcdServer::version()},
                      {"gRPC", grpc::Version()}};
  progress("ZooKeeper at " + zk.address() + ", etcd at " + etcd.endpoint());

  if (wants("memory")) {
    results.memory[System::kCoorddZk] =
        measureMemory(zkDaemonArgs(zk, "/coordd-bench-memory"), s.memory_sessions, s.memory_locks_per_session);
    results.memory[System::kCoorddEmbedded] = measureMemory({}, s.memory_sessions, s.memory_locks_per_session);
    for (const auto& [system, m] : results.memory) {
      progress(absl::StrFormat("memory: %s idle %d KiB, loaded %d KiB", displayName(system), m.idle_kib, m.loaded_kib));
    }
  }

  e2e::Daemon coordd_zk(zkDaemonArgs(zk, "/coordd-bench"));
  e2e::Daemon coordd_embedded;
  progress(absl::StrFormat("coordd (ZK) pid %d, coordd (embedded) pid %d", coordd_zk.process().pid(),
                           coordd_embedded.process().pid()));

  if (wants("lock-cycle")) {
    std::map<System, std::unique_ptr<LockDriver>> drivers;
    for (auto& [system, driver] : lockServices(coordd_zk, coordd_embedded, zk, etcd)) {
      drivers[system] = std::move(driver);
    }
    drivers[System::kGrpcFloor] = std::make_unique<GrpcFloorDriver>(coordd_zk.address());
    // A server's first seconds under load are slower (ZooKeeper's JIT is
    // still compiling its request path): every system gets the same
    // unmeasured run first, so that none pays for it in a figure.
    for (auto& [system, driver] : drivers) {
      runCyclePoint(*driver, kPrewarmClients, std::chrono::milliseconds(s.prewarm_ms), std::chrono::milliseconds(0));
    }
    progress("lock cycle: every system warmed up");
    // Systems take turns at each point, so a slow drift of the machine's
    // load spreads over all of them instead of landing on one.
    for (int clients : s.clients) {
      for (auto& [system, driver] : drivers) {
        CyclePoint point = runCyclePoint(*driver, clients, std::chrono::milliseconds(s.warmup_ms),
                                         std::chrono::milliseconds(s.measure_ms));
        progress(absl::StrFormat("lock cycle: %s, %d client%s: %.0f cycles/s, p50 %.2f ms, %d errors",
                                 displayName(system), clients, clients == 1 ? "" : "s", point.perSecond(),
                                 point.latency_us.p50 / 1000, point.errors));
        results.cycles[system].push_back(std::move(point));
      }
    }
  }

  if (wants("contended")) {
    for (auto& [system, driver] : lockServices(coordd_zk, coordd_embedded, zk, etcd)) {
      CyclePoint point =
          runContendedPoint(*driver, s.contended_clients, s.contended_locks, std::chrono::milliseconds(s.warmup_ms),
                            std::chrono::milliseconds(s.measure_ms));
      progress(absl::StrFormat("contended: %s, %d clients on %d locks: %.0f attempts/s, %.0f acquired/s, %d errors",
                               displayName(system), s.contended_clients, s.contended_locks, point.perSecond(),
                               point.acquiredPerSecond(), point.errors));
      results.contended[system] = std::move(point);
    }
  }

  if (wants("lock-command")) {
    const std::string name = "bench-command";
    std::map<System, std::vector<std::string>> commands;
    commands[System::kCoorddZk] = {COORDCTL_BIN, "--address", coordd_zk.address(), "lock", name, "--", "true"};
    commands[System::kCoorddEmbedded] = {COORDCTL_BIN, "--address", coordd_embedded.address(), "lock", name,
                                         "--",         "true"};
    commands[System::kZkDirect] = {"/usr/bin/python3", KAZOO_LOCK_SCRIPT, zk.address(), name};
    commands[System::kEtcd] = {"/usr/bin/etcdctl", "--endpoints=http://" + etcd.endpoint(), "lock", name, "true"};
    const std::map<std::string, std::string> env = {{"ETCDCTL_API", "3"}};
    std::map<System, std::vector<double>> samples;
    // One untimed run each (the page cache, the servers' first connection),
    // then the systems take turns.
    for (int run = 0; run <= s.command_runs; ++run) {
      for (const auto& [system, argv] : commands) {
        const double ms = runLockCommandMs(argv, env);
        if (run > 0) samples[system].push_back(ms);
      }
    }
    for (auto& [system, ms] : samples) {
      results.lock_command_ms[system] = percentiles(std::move(ms));
      progress(
          absl::StrFormat("lock command: %s median %.1f ms", displayName(system), results.lock_command_ms[system].p50));
    }
  }

  if (wants("local-calls")) {
    results.local_calls[System::kCoorddZk] = measureLocalCalls(coordd_zk.address(), s.local_calls);
    results.local_calls[System::kCoorddEmbedded] = measureLocalCalls(coordd_embedded.address(), s.local_calls);
    progress("Check and Status measured");
  }

  if (wants("failover")) {
    e2e::Daemon standby(zkDaemonArgs(zk, "/coordd-bench"));
    results.failover_us[System::kCoorddZk] = percentiles(measureFailover(coordd_zk, standby, s.failover_trials));
    progress(absl::StrFormat("failover: coordd (ZK) p50 %.1f ms", results.failover_us[System::kCoorddZk].p50 / 1000));
    results.failover_us[System::kEtcd] = percentiles(measureEtcdFailover(etcd.endpoint(), s.etcd_failover_trials));
    progress(absl::StrFormat("failover: etcd p50 %.0f ms", results.failover_us[System::kEtcd].p50 / 1000));
  }

  results.machine.load_at_end = loadAverage();
  results.run_seconds = micros(run_start, Clock::now()) / 1e6;
  const std::string markdown = renderMarkdown(results);
  std::cout << markdown << std::flush;
  std::filesystem::create_directories(options.out);
  std::ofstream(options.out + "/bench.md") << markdown;
  std::ofstream(options.out + "/bench.json") << renderJson(results);
  progress("wrote " + options.out + "/bench.md and bench.json");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (std::optional<int> code = runEtcdHolderIfAsked(argc, argv)) return *code;
  std::optional<Options> options = parse(argc, argv);
  if (!options) {
    std::cerr << kUsage;
    return 2;
  }
  try {
    return run(*options);
  } catch (const std::exception& e) {
    std::cerr << "coordd-bench: " << e.what() << std::endl;
    return 1;
  }
}
