#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "harness.h"
#include "stats.h"

// The workloads only coordd has, or that need a coordd-specific setup.
namespace coordd::bench {

// Latency of the "check before acting" calls, in microseconds.
struct LocalCallLatency {
  Percentiles check_us;   // Locks.Check of a held lock
  Percentiles status_us;  // Elections.Status of a PRIMARY candidacy
  // grpc.health.v1.Health/Check on the same channel: a gRPC round trip in
  // which coordd does nothing, the floor under the two above.
  Percentiles health_us;
  // The library's own answer, Election::isPrimary() and LockGuard::held():
  // from the client's memory and its lease, no call at all.
  Percentiles library_us;
  int64_t errors = 0;  // calls that failed or did not say HELD / PRIMARY
};

// `calls` Locks.Check and `calls` Elections.Status, one at a time, by one
// thread over raw gRPC stubs (what every client library call comes down to),
// in a session of the library that holds the lock and is the primary.
LocalCallLatency measureLocalCalls(const std::string& address, int calls);

// The daemon's resident memory, in KiB.
struct MemoryFigures {
  int64_t idle_kib = 0;    // started, no client ever connected
  int64_t loaded_kib = 0;  // with `locks` locks held by `sessions` sessions
  int sessions = 0;
  int locks = 0;

  // (loaded - idle) / locks: includes the sessions' own share.
  double bytesPerLock() const;
};

// Starts coordd with `daemon_args`, reads its idle RSS, then has `sessions`
// sessions (one thread each) take `locks_per_session` locks each and reads
// it again while all are held. Throws if the daemon does not report them all.
MemoryFigures measureMemory(const std::vector<std::string>& daemon_args, int sessions, int locks_per_session);

// Election failover, in microseconds per trial: a primary
// (`coordctl elect NAME -- sleep`) on `primary_daemon` is killed with
// SIGKILL; each sample is the time from the kill until a candidate of a
// library session on `standby_daemon` is told PRIMARY by its campaign's
// on_change callback (pushed on its KeepAlive stream: no polling).
std::vector<double> measureFailover(e2e::Daemon& primary_daemon, e2e::Daemon& standby_daemon, int trials);

}  // namespace coordd::bench
