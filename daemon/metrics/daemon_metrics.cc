#include "metrics/daemon_metrics.h"

namespace coordd::metrics {

DaemonMetrics::DaemonMetrics()
    : acquires(registry.counter("coordd_lock_acquires_total", "Lock acquisitions by mode and outcome.",
                                {"mode", "outcome"})),
      locks_lost(registry.counter("coordd_locks_lost_total", "Locks lost while held, by reason.", {"reason"})),
      coordinator_ops(registry.histogram("coordd_coordinator_op_duration_seconds",
                                         "Coordinator operations, from issue to completion.", {"op"},
                                         latencyBuckets())),
      cleaner_deletions(
          registry.counter("coordd_cleaner_deletions_total", "Empty parent nodes removed by the cleaner.", {})
              .with({})),
      reconciler_deletions(
          registry
              .counter("coordd_reconciler_deletions_total", "Nodes left behind by failed calls and removed later.", {})
              .with({})),
      grpc_calls(registry.counter("coordd_grpc_calls_total", "gRPC calls served, by method and status code.",
                                  {"method", "code"})),
      grpc_latency(registry.histogram("coordd_grpc_call_duration_seconds",
                                      "gRPC calls served, from start to status (streams included).", {"method"},
                                      latencyBuckets())) {}

}  // namespace coordd::metrics
