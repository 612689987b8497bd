#pragma once

#include "metrics/registry.h"

namespace coordd::metrics {

// The instruments coordd updates as it works, in one registry. Gauges of
// current state (sessions, locks held, link) are added by their owners,
// which read them when /metrics is scraped.
struct DaemonMetrics {
  DaemonMetrics();

  Registry registry;
  // coordd_lock_acquires_total{mode="try"|"wait", outcome="acquired"|"held"|"timeout"|"error"}
  Family<Counter>& acquires;
  // coordd_locks_lost_total{reason}: reason is one of a fixed few, not the
  // free text sent to the client.
  Family<Counter>& locks_lost;
  // coordd_coordinator_op_duration_seconds{op}: each coordinator call, from
  // issue to completion.
  Family<Histogram>& coordinator_ops;
  // coordd_cleaner_deletions_total: empty parents removed by the cleaner.
  Counter& cleaner_deletions;
  // coordd_reconciler_deletions_total: nodes left by failed calls, removed later.
  Counter& reconciler_deletions;
  // coordd_grpc_calls_total{method, code} and
  // coordd_grpc_call_duration_seconds{method}, streams included.
  Family<Counter>& grpc_calls;
  Family<Histogram>& grpc_latency;
};

}  // namespace coordd::metrics
