#include "report.h"

#include <sys/utsname.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "harness.h"

namespace coordd::bench {
namespace {

// A pass/miss goal from issue 11; `pass` is empty when a figure it needs was
// not measured.
struct Target {
  std::string text;
  std::optional<bool> pass;
  std::string miss;  // which figure missed, when more than one is checked
};

// One line of the table. Values are in `unit`.
struct Row {
  std::string metric;
  std::string unit;
  std::map<System, double> values;
  std::vector<Target> targets;

  // coordd (ZK) over `peer`: >1 means coordd's figure is the larger.
  std::optional<double> ratio(System peer) const {
    auto coordd = values.find(System::kCoorddZk);
    auto other = values.find(peer);
    if (coordd == values.end() || other == values.end() || other->second == 0) return std::nullopt;
    return coordd->second / other->second;
  }
};

std::string formatValue(double value, const std::string& unit) {
  if (unit == "cycles/s") return absl::StrFormat("%.0f", value);
  if (unit == "B") return absl::StrFormat("%.0f B", value);
  if (unit == "MiB") return absl::StrFormat("%.1f MiB", value);
  const int decimals = value < 10 ? 2 : value < 100 ? 1 : 0;  // three significant digits, or whole units
  return absl::StrFormat("%.*f %s", decimals, value, unit);
}

std::string formatRatio(std::optional<double> ratio) {
  if (!ratio) return "—";
  // Two significant digits at least: failover ratios are far below 0.01.
  return *ratio >= 0.1 ? absl::StrFormat("%.2f×", *ratio) : absl::StrFormat("%.2g×", *ratio);
}

// A goal on coordd's own figure, checked on every coordd measured.
Target absoluteTarget(const Row& row, const std::string& text, double limit) {
  Target target{text, std::nullopt, ""};
  for (System system : {System::kCoorddZk, System::kCoorddEmbedded}) {
    auto it = row.values.find(system);
    if (it == row.values.end()) continue;
    const bool pass = it->second <= limit;
    target.pass = target.pass.value_or(true) && pass;
    if (!pass) absl::StrAppend(&target.miss, target.miss.empty() ? "" : ", ", displayName(system));
  }
  return target;
}

// A goal on coordd (ZK) relative to a peer: ratio <= limit (`at_most`) or
// >= limit.
Target ratioTarget(const Row& row, System peer, const std::string& text, double limit, bool at_most) {
  std::optional<double> ratio = row.ratio(peer);
  if (!ratio) return Target{text, std::nullopt, ""};
  return Target{text, at_most ? *ratio <= limit : *ratio >= limit, ""};
}

// coordd (ZK)'s figure at most `factor` times the gRPC floor's and ZK
// direct's together: the hop plus the coordinator's own round trips.
Target sumTarget(const Row& row, const std::string& text, double factor) {
  auto coordd = row.values.find(System::kCoorddZk);
  auto floor = row.values.find(System::kGrpcFloor);
  auto direct = row.values.find(System::kZkDirect);
  if (coordd == row.values.end() || floor == row.values.end() || direct == row.values.end()) {
    return Target{text, std::nullopt, ""};
  }
  return Target{text, coordd->second <= factor * (floor->second + direct->second), ""};
}

// coordd (embedded)'s figure at least `limit` times the gRPC floor's.
Target embeddedTarget(const Row& row, const std::string& text, double limit) {
  auto embedded = row.values.find(System::kCoorddEmbedded);
  auto floor = row.values.find(System::kGrpcFloor);
  if (embedded == row.values.end() || floor == row.values.end() || floor->second == 0) {
    return Target{text, std::nullopt, ""};
  }
  return Target{text, embedded->second >= limit * floor->second, ""};
}

const CyclePoint* findPoint(const Results& results, System system, int clients) {
  auto it = results.cycles.find(system);
  if (it == results.cycles.end()) return nullptr;
  for (const CyclePoint& point : it->second) {
    if (point.clients == clients) return &point;
  }
  return nullptr;
}

// Adds a row of one figure of every system that has it.
template <typename Source, typename Figure>
Row rowOf(const std::string& metric, const std::string& unit, const std::map<System, Source>& source, Figure&& figure) {
  Row row{metric, unit, {}, {}};
  for (const auto& [system, value] : source) row.values[system] = figure(value);
  return row;
}

std::vector<Row> buildRows(const Results& results) {
  std::vector<Row> rows;
  const auto latencyRow = [&](const std::string& name, double Percentiles::*field) {
    Row row{"lock cycle " + name + ", 1 client", "ms", {}, {}};
    for (System system : kSystems) {
      if (const CyclePoint* point = findPoint(results, system, 1); point && point->cycles > 0) {
        row.values[system] = point->latency_us.*field / 1000;
      }
    }
    return row;
  };
  if (!results.cycles.empty()) {
    rows.push_back(latencyRow("p50", &Percentiles::p50));
    rows.back().targets.push_back(sumTarget(rows.back(), "≤ 1.15× (gRPC floor + ZK direct)", 1.15));
    rows.back().targets.push_back(ratioTarget(rows.back(), System::kEtcd, "≤ etcd", 1.0, true));
    rows.push_back(latencyRow("p99", &Percentiles::p99));
    rows.push_back(latencyRow("p99.9", &Percentiles::p999));
    for (int clients : results.settings.clients) {
      Row row{absl::StrCat("lock cycles/s, ", clients, clients == 1 ? " client" : " clients"), "cycles/s", {}, {}};
      for (System system : kSystems) {
        if (const CyclePoint* point = findPoint(results, system, clients)) row.values[system] = point->perSecond();
      }
      if (clients == 64) {
        row.targets.push_back(ratioTarget(row, System::kZkDirect, "≥ 1.5× ZK direct", 1.5, false));
        row.targets.push_back(ratioTarget(row, System::kEtcd, "≥ 1.5× etcd", 1.5, false));
        row.targets.push_back(embeddedTarget(row, "embedded ≥ 0.7× gRPC floor", 0.7));
      }
      rows.push_back(std::move(row));
    }
  }
  if (!results.contended.empty()) {
    const auto& s = results.settings;
    const std::string point = absl::StrCat(s.contended_clients, " clients on ", s.contended_locks, " locks");
    rows.push_back(rowOf("contended attempts/s, " + point, "cycles/s", results.contended,
                         [](const CyclePoint& p) { return p.perSecond(); }));
    rows.push_back(rowOf("contended acquired/s, " + point, "cycles/s", results.contended,
                         [](const CyclePoint& p) { return p.acquiredPerSecond(); }));
    rows.push_back(rowOf("contended attempt p50, " + point, "ms", results.contended,
                         [](const CyclePoint& p) { return p.latency_us.p50 / 1000; }));
  }

  if (!results.lock_command_ms.empty()) {
    rows.push_back(rowOf("lock command wall time, median", "ms", results.lock_command_ms,
                         [](const Percentiles& p) { return p.p50; }));
    rows.back().targets.push_back(ratioTarget(rows.back(), System::kEtcd, "≤ 0.5× etcdctl", 0.5, true));
    rows.push_back(rowOf("lock command wall time, max", "ms", results.lock_command_ms,
                         [](const Percentiles& p) { return p.max; }));
  }

  const auto callRows = [&](const std::string& call, Percentiles LocalCallLatency::*which, bool with_target) {
    const std::pair<std::string, double Percentiles::*> fields[] = {
        {"p50", &Percentiles::p50}, {"p99", &Percentiles::p99}, {"p99.9", &Percentiles::p999}};
    for (const auto& [name, pointer] : fields) {
      double Percentiles::*field = pointer;  // a lambda cannot capture a structured binding in C++17
      rows.push_back(rowOf(call + " " + name, "µs", results.local_calls,
                           [&](const LocalCallLatency& l) { return (l.*which).*field; }));
      if (with_target && name == "p99") rows.back().targets.push_back(absoluteTarget(rows.back(), "≤ 100 µs", 100));
    }
  };
  if (!results.local_calls.empty()) {
    callRows("Locks.Check", &LocalCallLatency::check_us, true);
    callRows("Elections.Status", &LocalCallLatency::status_us, true);
    callRows("gRPC floor: Health.Check", &LocalCallLatency::health_us, false);
    callRows("library isPrimary()+held()", &LocalCallLatency::library_us, false);
  }

  if (!results.failover_us.empty()) {
    const std::pair<std::string, double Percentiles::*> fields[] = {
        {"p50", &Percentiles::p50}, {"p99", &Percentiles::p99}, {"max", &Percentiles::max}};
    for (const auto& [name, pointer] : fields) {
      double Percentiles::*field = pointer;
      rows.push_back(
          rowOf("failover " + name, "ms", results.failover_us, [&](const Percentiles& p) { return p.*field / 1000; }));
      if (name == "p99") rows.back().targets.push_back(absoluteTarget(rows.back(), "≤ 100 ms", 100));
    }
  }

  if (!results.memory.empty()) {
    constexpr double kKiBPerMiB = 1024;
    rows.push_back(rowOf("daemon RSS idle", "MiB", results.memory,
                         [&](const MemoryFigures& m) { return static_cast<double>(m.idle_kib) / kKiBPerMiB; }));
    rows.back().targets.push_back(absoluteTarget(rows.back(), "≤ 30 MiB", 30));
    const MemoryFigures& any = results.memory.begin()->second;
    rows.push_back(rowOf(absl::StrCat("daemon RSS, ", any.locks, " locks held by ", any.sessions, " sessions"), "MiB",
                         results.memory,
                         [&](const MemoryFigures& m) { return static_cast<double>(m.loaded_kib) / kKiBPerMiB; }));
    rows.push_back(rowOf("daemon RSS per held lock", "B", results.memory,
                         [](const MemoryFigures& m) { return m.bytesPerLock(); }));
    rows.back().targets.push_back(absoluteTarget(rows.back(), "≤ 2 KiB", 2048));
  }
  return rows;
}

std::string outcome(const Target& target) {
  if (!target.pass) return "not measured";
  if (*target.pass) return "pass";
  return target.miss.empty() ? "MISS" : absl::StrCat("MISS (", target.miss, ")");
}

// Display width of UTF-8 text: code points, not bytes (µ, ×, ≤ are wider in
// bytes than on screen).
size_t width(const std::string& text) {
  return static_cast<size_t>(
      std::count_if(text.begin(), text.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
}

// A Markdown table with its columns padded, readable as printed text too.
std::string markdownTable(const std::vector<std::vector<std::string>>& lines) {
  std::vector<size_t> widths(lines.front().size(), 3);
  for (const auto& cells : lines) {
    for (size_t c = 0; c < cells.size(); ++c) widths[c] = std::max(widths[c], width(cells[c]));
  }
  std::string out;
  const auto emit = [&](const std::vector<std::string>& cells) {
    for (size_t c = 0; c < cells.size(); ++c) {
      absl::StrAppend(&out, "| ", cells[c], std::string(widths[c] - width(cells[c]) + 1, ' '));
    }
    absl::StrAppend(&out, "|\n");
  };
  emit(lines.front());
  std::vector<std::string> rule;
  for (size_t w : widths) rule.push_back(std::string(w, '-'));
  emit(rule);
  for (size_t i = 1; i < lines.size(); ++i) emit(lines[i]);
  return out;
}

std::string seconds(int ms) { return absl::StrFormat("%g s", ms / 1000.0); }

}  // namespace

std::string displayName(System system) {
  switch (system) {
    case System::kCoorddZk:
      return "coordd (ZK)";
    case System::kCoorddEmbedded:
      return "coordd (embedded)";
    case System::kZkDirect:
      return "ZK direct";
    case System::kEtcd:
      return "etcd";
    case System::kGrpcFloor:
      return "gRPC floor";
  }
  return "?";
}

std::string key(System system) {
  switch (system) {
    case System::kCoorddZk:
      return "coordd_zookeeper";
    case System::kCoorddEmbedded:
      return "coordd_embedded";
    case System::kZkDirect:
      return "zookeeper_direct";
    case System::kEtcd:
      return "etcd";
    case System::kGrpcFloor:
      return "grpc_floor";
  }
  return "?";
}

std::string loadAverage() {
  std::vector<std::string> fields = absl::StrSplit(e2e::readFile("/proc/loadavg"), ' ');
  fields.resize(std::min<size_t>(fields.size(), 3));
  return absl::StrJoin(fields, " ");
}

Machine describeMachine() {
  Machine machine;
  machine.cpus = std::thread::hardware_concurrency();
  for (const std::string& line : e2e::readLines("/proc/cpuinfo")) {
    if (line.rfind("model name", 0) == 0) {
      machine.cpu_model = std::string(absl::StripAsciiWhitespace(line.substr(line.find(':') + 1)));
      break;
    }
  }
  utsname name{};
  if (uname(&name) == 0) machine.kernel = absl::StrCat(name.sysname, " ", name.release);
  machine.load_at_start = loadAverage();
  return machine;
}

std::string renderMarkdown(const Results& results) {
  const Machine& m = results.machine;
  const Settings& s = results.settings;
  std::string out = "# coordd-bench\n\n";
  absl::StrAppend(&out, "Machine: ", m.cpus, " CPUs (nproc), ", m.cpu_model, ", ", m.kernel, "; load average at start ",
                  m.load_at_start, ", at end ", m.load_at_end, ".  \n");
  std::vector<std::string> versions;
  for (const auto& [product, version] : results.versions) versions.push_back(product + " " + version);
  absl::StrAppend(&out, "Versions: ", absl::StrJoin(versions, "; "), ".  \n");
  absl::StrAppend(&out, "Run: ", s.quick ? "--quick" : "full", ", took ",
                  absl::StrFormat("%.0f s", results.run_seconds),
                  ". Only ratios within one run count (BASELINES.md).\n\n");

  std::vector<std::vector<std::string>> lines;
  lines.push_back({"metric"});
  for (System system : kSystems) lines.back().push_back(displayName(system));
  lines.back().insert(lines.back().end(),
                      {"coordd (ZK) ÷ ZK direct", "coordd (ZK) ÷ etcd", "target (coordd)", "result"});
  for (const Row& row : buildRows(results)) {
    std::vector<std::string> cells{row.metric};
    for (System system : kSystems) {
      auto it = row.values.find(system);
      cells.push_back(it == row.values.end() ? "—" : formatValue(it->second, row.unit));
    }
    cells.push_back(formatRatio(row.ratio(System::kZkDirect)));
    cells.push_back(formatRatio(row.ratio(System::kEtcd)));
    std::vector<std::string> texts, outcomes;
    for (const Target& target : row.targets) {
      texts.push_back(target.text);
      outcomes.push_back(outcome(target));
    }
    cells.push_back(texts.empty() ? "" : absl::StrJoin(texts, "; "));
    cells.push_back(outcomes.empty() ? "" : absl::StrJoin(outcomes, "; "));
    lines.push_back(std::move(cells));
  }
  absl::StrAppend(&out, markdownTable(lines));

  std::string errors;
  for (const auto& [system, points] : results.cycles) {
    for (const CyclePoint& point : points) {
      if (point.errors == 0) continue;
      absl::StrAppend(&errors, "* ", displayName(system), ", ", point.clients, " clients: ", point.errors,
                      " failed cycles (not counted), first: ", point.first_error, "\n");
    }
  }
  for (const auto& [system, point] : results.contended) {
    if (point.errors == 0) continue;
    absl::StrAppend(&errors, "* ", displayName(system), ", contended: ", point.errors,
                    " failed attempts (not counted), first: ", point.first_error, "\n");
  }
  for (const auto& [system, calls] : results.local_calls) {
    if (calls.errors > 0)
      absl::StrAppend(&errors, "* ", displayName(system), ": ", calls.errors,
                      " Check/Status calls failed or answered otherwise\n");
  }
  if (!errors.empty()) absl::StrAppend(&out, "\nErrors:\n\n", errors);

  absl::StrAppend(
      &out, "\nHow it was measured:\n\n",
      "* Lock cycle: a non-blocking acquire of the client's own lock, then its release (no contention). coordd: "
      "Session::tryLock + LockGuard::release of the C++ library (Locks.TryAcquire + Locks.Release), one session per "
      "client, all sessions over one gRPC channel. ZK direct: libzookeeper-mt sync API, create ephemeral + delete, "
      "all clients on one ZooKeeper session. etcd: v3lockpb Lock + Unlock, one lease per client, one gRPC channel. "
      "One std::thread per client making synchronous calls (256 clients: 256 threads). First every system runs ",
      seconds(s.prewarm_ms),
      " unmeasured with 16 clients (the servers' JIT and caches); then at each point the "
      "systems take turns, each with ",
      seconds(s.warmup_ms), " warm-up, then cycles ending within ", seconds(s.measure_ms),
      " count; latency percentiles are nearest-rank over those cycles.\n",
      "* gRPC floor: not a lock. Each cycle is two grpc.health.v1.Health/Check calls to coordd (ZK) over one "
      "channel, one client per thread as above: the transport of a coordd cycle (TryAcquire + Release) with none of "
      "its work. A sidecar reached over gRPC on this machine cycles no faster than this, before any coordinator "
      "round trip.\n",
      "* Contended: ", s.contended_clients, " clients (threads) share ", s.contended_locks,
      " locks, client k trying lock k mod ", s.contended_locks,
      " back to back: a non-blocking acquire and, if it got the lock, its release at once; a taken lock drops "
      "the attempt (the task is dropped). coordd and ZK direct as in the lock cycle; etcd, whose lock service has "
      "no try-lock, a single-key try-lock (cheaper than clientv3's Mutex.TryLock): a Txn putting the key with the "
      "client's lease if never created, "
      "and a Txn deleting it while its create_revision is the one made. Same warm-up and window as a lock-cycle "
      "point.\n",
      "* Lock command: the whole process of a cron job's lock, from fork to exit: coordd: `coordctl lock NAME -- "
      "true` against the daemon; ZK direct column: a Python script taking kazoo's Lock recipe (Debian's "
      "python3-kazoo: connect, lock, run `true`, release, close); etcd: `etcdctl lock NAME true` (Debian's "
      "etcd-client). One untimed run each, then ",
      s.command_runs, " runs each, the systems taking turns.\n", "* Locks.Check / Elections.Status: ", s.local_calls,
      " calls each, one at a time from one thread, raw gRPC stubs over the Unix socket, in a session holding the lock "
      "and primary of the election (after ",
      s.local_calls / 10, " untimed calls).\n",
      "* Failover: coordd (ZK): two daemons on the ZooKeeper; `coordctl elect NAME -- sleep 1000` through daemon 1 is "
      "killed with SIGKILL; time until a library candidate through daemon 2 is told PRIMARY by its on_change "
      "callback (pushed, not polled); ",
      s.failover_trials,
      " trials. etcd: a holder process locks with a 2 s lease kept alive every TTL/3, a waiter "
      "blocks in Lock, the holder is killed with SIGKILL; time until the waiter's Lock returns (the lease must "
      "expire, ~2 s per trial, so only ",
      s.etcd_failover_trials, " trials). With fewer than 100 trials, p99 is the slowest trial.\n",
      "* Memory: VmRSS of a freshly started daemon 1 s after it is ready (idle), then with ",
      s.memory_sessions * s.memory_locks_per_session, " locks held by ", s.memory_sessions,
      " library sessions (one thread each); per held lock = (loaded − idle) / locks, the sessions' share included.\n",
      "* Every server runs on this machine next to the benchmark, so the client threads and the servers share its "
      "CPUs, as for every system alike.\n");
  return out;
}

std::string renderJson(const Results& results) {
  using nlohmann::json;
  const auto percentilesJson = [](const Percentiles& p) {
    return json{{"samples", p.samples}, {"p50", p.p50}, {"p99", p.p99}, {"p999", p.p999}, {"max", p.max}};
  };
  json out;
  out["machine"] = {{"cpus", results.machine.cpus},
                    {"cpu_model", results.machine.cpu_model},
                    {"kernel", results.machine.kernel},
                    {"load_at_start", results.machine.load_at_start},
                    {"load_at_end", results.machine.load_at_end}};
  out["versions"] = results.versions;
  const Settings& s = results.settings;
  out["settings"] = {{"quick", s.quick},
                     {"prewarm_ms", s.prewarm_ms},
                     {"warmup_ms", s.warmup_ms},
                     {"measure_ms", s.measure_ms},
                     {"clients", s.clients},
                     {"contended_clients", s.contended_clients},
                     {"contended_locks", s.contended_locks},
                     {"command_runs", s.command_runs},
                     {"local_calls", s.local_calls},
                     {"failover_trials", s.failover_trials},
                     {"etcd_failover_trials", s.etcd_failover_trials},
                     {"memory_sessions", s.memory_sessions},
                     {"memory_locks_per_session", s.memory_locks_per_session}};
  out["run_seconds"] = results.run_seconds;

  json rows = json::array();
  for (const Row& row : buildRows(results)) {
    json values = json::object();
    for (const auto& [system, value] : row.values) values[key(system)] = value;
    json targets = json::array();
    for (const Target& target : row.targets) {
      targets.push_back(
          {{"target", target.text}, {"pass", target.pass ? json(*target.pass) : json()}, {"missed_by", target.miss}});
    }
    json ratios = json::object();
    if (auto r = row.ratio(System::kZkDirect)) ratios["coordd_zookeeper/zookeeper_direct"] = *r;
    if (auto r = row.ratio(System::kEtcd)) ratios["coordd_zookeeper/etcd"] = *r;
    rows.push_back(
        {{"metric", row.metric}, {"unit", row.unit}, {"values", values}, {"ratios", ratios}, {"targets", targets}});
  }
  out["table"] = rows;

  json raw;
  for (const auto& [system, points] : results.cycles) {
    for (const CyclePoint& p : points) {
      raw["lock_cycle"][key(system)].push_back({{"clients", p.clients},
                                                {"seconds", p.seconds},
                                                {"cycles", p.cycles},
                                                {"cycles_per_second", p.perSecond()},
                                                {"errors", p.errors},
                                                {"first_error", p.first_error},
                                                {"latency_us", percentilesJson(p.latency_us)}});
    }
  }
  for (const auto& [system, p] : results.contended) {
    raw["contended"][key(system)] = {{"clients", p.clients},
                                     {"seconds", p.seconds},
                                     {"attempts", p.cycles},
                                     {"acquired", p.acquired},
                                     {"attempts_per_second", p.perSecond()},
                                     {"acquired_per_second", p.acquiredPerSecond()},
                                     {"errors", p.errors},
                                     {"first_error", p.first_error},
                                     {"latency_us", percentilesJson(p.latency_us)}};
  }
  for (const auto& [system, calls] : results.local_calls) {
    raw["local_calls"][key(system)] = {{"check_us", percentilesJson(calls.check_us)},
                                       {"status_us", percentilesJson(calls.status_us)},
                                       {"health_us", percentilesJson(calls.health_us)},
                                       {"library_us", percentilesJson(calls.library_us)},
                                       {"errors", calls.errors}};
  }
  for (const auto& [system, p] : results.failover_us) raw["failover_us"][key(system)] = percentilesJson(p);
  for (const auto& [system, p] : results.lock_command_ms) raw["lock_command_ms"][key(system)] = percentilesJson(p);
  for (const auto& [system, m] : results.memory) {
    raw["memory"][key(system)] = {{"idle_kib", m.idle_kib},
                                  {"loaded_kib", m.loaded_kib},
                                  {"sessions", m.sessions},
                                  {"locks", m.locks},
                                  {"bytes_per_lock", m.bytesPerLock()}};
  }
  out["raw"] = raw;
  return out.dump(2) + "\n";
}

}  // namespace coordd::bench
