#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "coordd_workloads.h"
#include "lock_cycle.h"
#include "stats.h"

namespace coordd::bench {

// The systems compared, in the table's column order. kGrpcFloor is no
// system: lock cycles made of two no-op gRPC calls to coordd (GrpcFloorDriver).
enum class System { kCoorddZk, kCoorddEmbedded, kZkDirect, kEtcd, kGrpcFloor };
inline constexpr System kSystems[] = {System::kCoorddZk, System::kCoorddEmbedded, System::kZkDirect, System::kEtcd,
                                      System::kGrpcFloor};
std::string displayName(System system);  // "coordd (ZK)", ...
std::string key(System system);          // "coordd_zk", ... for JSON

// Where the figures were taken: they only compare within one run.
struct Machine {
  unsigned cpus = 0;
  std::string cpu_model;
  std::string kernel;
  std::string load_at_start;  // /proc/loadavg: another job on the machine shows here
  std::string load_at_end;
};
Machine describeMachine();
std::string loadAverage();

struct Settings {
  bool quick = false;
  int prewarm_ms = 0;        // once per system, 16 clients, before any point
  int warmup_ms = 0;         // per lock-cycle point, not counted
  int measure_ms = 0;        // per lock-cycle point
  std::vector<int> clients;  // lock-cycle points
  int contended_clients = 0;
  int contended_locks = 0;
  int command_runs = 0;  // of each lock command, after one untimed
  int local_calls = 0;   // Check and Status calls each
  int failover_trials = 0;
  int etcd_failover_trials = 0;
  int memory_sessions = 0;
  int memory_locks_per_session = 0;
};

// Everything one run measured. A system or workload left out (--only) is
// absent, and its cells read "—".
struct Results {
  Machine machine;
  std::map<std::string, std::string> versions;  // product -> version
  Settings settings;
  std::map<System, std::vector<CyclePoint>> cycles;  // one per Settings::clients
  std::map<System, CyclePoint> contended;
  // Wall time of one lock-guarded command, in ms; kZkDirect: kazoo's.
  std::map<System, Percentiles> lock_command_ms;
  std::map<System, LocalCallLatency> local_calls;
  std::map<System, Percentiles> failover_us;
  std::map<System, MemoryFigures> memory;
  double run_seconds = 0;
};

// The side-by-side table with ratios and targets, and how it was measured,
// as Markdown (also what is printed).
std::string renderMarkdown(const Results& results);
// The same figures, and every raw one, as JSON.
std::string renderJson(const Results& results);

}  // namespace coordd::bench
