#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace coordd::faults {

// One contending client process of the fault suite.
struct ClientConfig {
  enum class Role { kLock, kElection };
  int slot = 0;
  Role role = Role::kLock;
  std::string name;      // the lock or election
  std::string address;   // its daemon
  std::string log;       // its event log
  std::string resource;  // the fenced resource's socket
  int64_t ttl_ms = 2000;
  // Ignores SUSPENDED, LOST and the lease, and writes without a token check:
  // what the suite must catch.
  bool unsafe = false;
  uint64_t seed = 0;
};

// The resource a client acts on: "lock/<name>" or "election/<name>".
std::string resourceOf(const ClientConfig& config);

// The command line that runs `config` as a client of this binary.
std::vector<std::string> clientCommand(const ClientConfig& config);
// Runs the client when argv asks for it (until SIGTERM); nullopt otherwise.
std::optional<int> runClientIfAsked(int argc, char** argv);

// A client's event log, one line per event:
//   <monotonic us> <kind> <resource> <token> <detail>
// kind: start (token = pid), session, session-end, begin (it now believes it
// holds / is primary), end (it no longer does; detail says why), event (a
// library callback; detail is the state), error.
struct LogLine {
  int64_t at_us = 0;
  std::string kind;
  std::string resource;
  int64_t token = 0;
  std::string detail;
};
std::vector<LogLine> readClientLog(const std::string& path);

}  // namespace coordd::faults
