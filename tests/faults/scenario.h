#pragma once

#include <chrono>
#include <cstdint>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include "client.h"
#include "resource.h"

namespace coordd::faults {

enum class FaultKind {
  kClientKill,
  kClientStop,
  kDaemonKill,
  kDaemonStop,
  kLeaderStop,
  kLeaderKill,
  kFollowerStop,
  kFollowerKill,
  kEnsembleRestart,
  kPartition,
};
const char* faultName(FaultKind kind);
std::vector<FaultKind> allFaults();

struct FaultRecord {
  FaultKind kind = FaultKind::kClientKill;
  std::string target;  // what it hit, for the report
  int client = -1;     // the client slot it hit, if any
  int daemon = -1;     // the daemon it hit, if any
  int64_t start_us = 0;
  int64_t end_us = 0;  // when the target was resumed, restarted or healed
  bool injected = true;
  std::string note;  // why not injected
};

// One process lifetime of a client slot.
struct Incarnation {
  std::string log;
  int64_t started_us = 0;
  int64_t killed_us = 0;       // kill -9; 0 if it lived to the end
  std::vector<LogLine> lines;  // its event log, read at the end of the run
};

struct ClientRecord {
  ClientConfig config;
  int daemon = 0;
  std::vector<Incarnation> lives;
  std::vector<std::pair<int64_t, int64_t>> stops;  // SIGSTOP .. SIGCONT
};

// The bounds within which what a dead or hung client held must be free.
struct Bounds {
  int64_t session_timeout_ms = 0;
  int64_t tick_ms = 0;
  int64_t client_ttl_ms = 0;
  // Allowed on top for the next holder to be told and to take it, on a
  // loaded 2-core machine.
  int64_t delivery_ms = 0;
};

// Everything a run leaves for the checker.
struct RunRecord {
  std::vector<ClientRecord> clients;
  std::vector<FaultRecord> faults;
  std::vector<Write> writes;
  Bounds bounds;
  int64_t end_us = 0;  // the clients were told to stop
  std::string partition_note;
};

struct ScenarioConfig {
  uint64_t seed = 1;
  // How long to go on injecting faults after the first full round of every
  // kind.
  std::chrono::seconds extra_time{0};
  int lock_clients = 5;
  int election_clients = 5;
  std::chrono::milliseconds session_timeout{2000};
  std::chrono::milliseconds client_ttl{2000};
  std::chrono::milliseconds min_gap{1500};
  std::chrono::milliseconds max_gap{3000};
  // Unsafe run: slot 0 (a lock client) and the first election client ignore
  // SUSPENDED and tokens, and the faults go at them.
  bool unsafe = false;
};

// A 3-node ZooKeeper ensemble, three coordd daemons (one in its own network
// namespace when the machine allows it), the fenced resource and the
// contending clients; faults injected one at a time from a seeded RNG.
RunRecord runScenario(const ScenarioConfig& config, std::ostream& progress);

}  // namespace coordd::faults
