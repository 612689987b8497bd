#include "checker.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace coordd::faults {
namespace {

// A client resumed from SIGSTOP needs a moment before its first check runs;
// a belief that ends within this of the resume ended when it was stopped.
constexpr int64_t kResumeGraceUs = 250000;
constexpr size_t kViolationsShown = 10;

// One stretch during which a client believed it held a lock or was primary.
struct Belief {
  int slot = 0;
  size_t life = 0;
  std::string resource;
  int64_t token = 0;
  int64_t from = 0;
  int64_t to = 0;  // as logged; else its last act on it before death or the end of the run
  std::string why_ended;
  bool killed = false;  // it ended with the process
};

std::vector<Belief> beliefsOf(const RunRecord& run) {
  std::vector<Belief> beliefs;
  for (size_t c = 0; c < run.clients.size(); ++c) {
    const ClientRecord& client = run.clients[c];
    for (size_t life = 0; life < client.lives.size(); ++life) {
      std::map<std::pair<std::string, int64_t>, Belief> open;
      for (const LogLine& line : client.lives[life].lines) {
        if (line.kind == "begin") {
          open[{line.resource, line.token}] =
              Belief{client.config.slot, life, line.resource, line.token, line.at_us, 0, "", false};
        } else if (line.kind == "end") {
          auto it = open.find({line.resource, line.token});
          if (it == open.end()) continue;
          it->second.to = line.at_us;
          it->second.why_ended = line.detail;
          beliefs.push_back(it->second);
          open.erase(it);
        }
      }
      const Incarnation& incarnation = client.lives[life];
      for (auto& [key, belief] : open) {
        belief.killed = incarnation.killed_us != 0;
        belief.why_ended = belief.killed ? "killed" : "run ended";
        // Never told otherwise, it believed until it died or the run ended,
        // but it can only have acted on the belief until its last write: a
        // process that stalled meanwhile (a slow machine, a sanitizer) did
        // nothing with it.
        const int64_t until = belief.killed ? incarnation.killed_us : run.end_us;
        belief.to = belief.from;
        for (const Write& write : run.writes) {
          if (write.client == belief.slot && write.resource == belief.resource && write.token == belief.token &&
              write.sent_us >= belief.from && write.sent_us <= until) {
            belief.to = std::max(belief.to, write.sent_us);
          }
        }
        beliefs.push_back(belief);
      }
    }
  }
  return beliefs;
}

// A belief minus the times its process was stopped: a stopped process cannot
// act. The part after a resume counts only if it outlasts the grace.
std::vector<std::pair<int64_t, int64_t>> activeParts(const Belief& belief, const ClientRecord& client) {
  std::vector<std::pair<int64_t, int64_t>> parts = {{belief.from, belief.to}};
  for (const auto& [stopped, resumed] : client.stops) {
    std::vector<std::pair<int64_t, int64_t>> next;
    for (const auto& [from, to] : parts) {
      if (to <= stopped || from >= resumed) {
        next.emplace_back(from, to);
        continue;
      }
      if (from < stopped) next.emplace_back(from, stopped);
      if (to > resumed + kResumeGraceUs) next.emplace_back(resumed, to);
    }
    parts = std::move(next);
  }
  return parts;
}

std::string ms(int64_t us) { return absl::StrFormat("%.1f", static_cast<double>(us) / 1000.0); }

const ClientRecord& clientOf(const RunRecord& run, int slot) { return run.clients[static_cast<size_t>(slot)]; }

// I2 and I3: no two clients believed at once.
void checkExclusive(const RunRecord& run, const std::vector<Belief>& beliefs, const std::string& prefix,
                    Invariant& invariant) {
  struct Part {
    const Belief* belief;
    int64_t from;
    int64_t to;
  };
  std::map<std::string, std::vector<Part>> by_resource;
  for (const Belief& belief : beliefs) {
    if (!absl::StartsWith(belief.resource, prefix)) continue;
    ++invariant.checked;
    for (const auto& [from, to] : activeParts(belief, clientOf(run, belief.slot))) {
      by_resource[belief.resource].push_back(Part{&belief, from, to});
    }
  }
  for (auto& [resource, parts] : by_resource) {
    std::sort(parts.begin(), parts.end(), [](const Part& a, const Part& b) { return a.from < b.from; });
    for (size_t i = 0; i < parts.size(); ++i) {
      for (size_t j = i + 1; j < parts.size() && parts[j].from < parts[i].to; ++j) {
        const Belief& a = *parts[i].belief;
        const Belief& b = *parts[j].belief;
        if (a.slot == b.slot) continue;
        invariant.violations.push_back(absl::StrCat(resource, ": client ", a.slot, " (token ", a.token,
                                                    ", ended: ", a.why_ended, ") and client ", b.slot, " (token ",
                                                    b.token, ") both believed for ",
                                                    ms(std::min(parts[i].to, parts[j].to) - parts[j].from), " ms"));
      }
    }
  }
}

void checkFencing(const RunRecord& run, Verdict& verdict, Invariant& invariant) {
  std::map<std::string, int64_t> highest;
  for (const Write& write : run.writes) {
    ++verdict.writes;
    if (!write.accepted) {
      ++verdict.stale_writes_fenced;
      continue;
    }
    ++invariant.checked;
    int64_t& top = highest[write.resource];
    if (write.token < top) {
      invariant.violations.push_back(absl::StrCat(write.resource, ": client ", write.client, " wrote with token ",
                                                  write.token, " after token ", top, " had been accepted"));
    }
    top = std::max(top, write.token);
  }
}

bool releasesHolds(FaultKind kind) {
  return kind == FaultKind::kClientKill || kind == FaultKind::kClientStop || kind == FaultKind::kDaemonKill ||
         kind == FaultKind::kDaemonStop || kind == FaultKind::kPartition;
}

int64_t boundMs(FaultKind kind, const Bounds& bounds) {
  switch (kind) {
    case FaultKind::kClientKill:
      return bounds.delivery_ms;
    case FaultKind::kClientStop:
      return bounds.client_ttl_ms + bounds.delivery_ms;
    default:
      return bounds.session_timeout_ms + bounds.tick_ms + bounds.delivery_ms;
  }
}

// I4: after a fault that takes a holder away, another client holds within
// the bound.
void checkRelease(const RunRecord& run, const std::vector<Belief>& beliefs, Verdict& verdict, Invariant& invariant) {
  std::map<std::string, Timing> timings;
  for (size_t f = 0; f < run.faults.size(); ++f) {
    const FaultRecord& fault = run.faults[f];
    if (!fault.injected || !releasesHolds(fault.kind)) continue;
    const int64_t bound_us = boundMs(fault.kind, run.bounds) * 1000;
    for (const Belief& victim : beliefs) {
      const ClientRecord& client = clientOf(run, victim.slot);
      const bool hit = fault.client == victim.slot || (fault.client < 0 && fault.daemon == client.daemon);
      if (!hit || victim.from > fault.start_us || victim.to <= fault.start_us) continue;
      ++invariant.checked;
      std::optional<int64_t> next;
      bool contender = false;
      for (const Belief& other : beliefs) {
        if (other.resource != victim.resource || other.slot == victim.slot) continue;
        contender = true;
        if (other.from > fault.start_us && (!next || other.from < *next)) next = other.from;
      }
      if (!contender) continue;
      const std::string kind = absl::StartsWith(victim.resource, "lock/") ? "lock free again" : "new primary";
      const std::string label = absl::StrCat(faultName(fault.kind), " -> ", kind);
      Timing& timing = timings[label];
      timing.label = label;
      timing.bound_ms = bound_us / 1000;
      if (!next) {
        invariant.violations.push_back(absl::StrCat(victim.resource, ": never taken over after ", faultName(fault.kind),
                                                    " hit client ", victim.slot));
        continue;
      }
      const int64_t took = *next - fault.start_us;
      timing.samples.push_back(static_cast<double>(took) / 1000.0);
      if (took > bound_us) {
        invariant.violations.push_back(absl::StrCat(victim.resource, ": taken over ", ms(took), " ms after ",
                                                    faultName(fault.kind), " hit client ", victim.slot, " (bound ",
                                                    bound_us / 1000, " ms)"));
      }
    }
  }
  for (auto& [label, timing] : timings) verdict.timings.push_back(std::move(timing));
}

bool isLoss(const std::string& state) {
  return state == "lost" || state == "terminated" || state == "secondary" || state == "not_candidate";
}

// I5: a client whose hold went to another learns of it; a client told it
// lost something never holds it again.
void checkEvents(const RunRecord& run, const std::vector<Belief>& beliefs, Invariant& invariant) {
  for (const Belief& held : beliefs) {
    if (held.killed) continue;  // the dead are told nothing
    std::optional<int64_t> superseded;
    for (const Belief& other : beliefs) {
      if (other.resource == held.resource && other.slot != held.slot && other.from > held.from &&
          other.from < held.to && other.token > held.token) {
        superseded = superseded ? std::min(*superseded, other.from) : other.from;
      }
    }
    if (!superseded) continue;
    ++invariant.checked;
    bool told = false;
    for (const LogLine& line : clientOf(run, held.slot).lives[held.life].lines) {
      if (line.at_us < held.from) continue;
      if ((line.kind == "event" && line.resource == held.resource && isLoss(line.detail)) ||
          line.kind == "session-end") {
        told = true;
        break;
      }
    }
    if (!told) {
      invariant.violations.push_back(absl::StrCat(held.resource, ": client ", held.slot, " (token ", held.token,
                                                  ") was never told it lost what another took"));
    }
  }
  for (size_t c = 0; c < run.clients.size(); ++c) {
    for (const auto& life : run.clients[c].lives) {
      std::set<std::pair<std::string, int64_t>> lost;
      for (const LogLine& line : life.lines) {
        const std::pair<std::string, int64_t> key{line.resource, line.token};
        if (line.kind == "event" && (line.detail == "lost" || line.detail == "terminated") && line.token != 0) {
          ++invariant.checked;
          lost.insert(key);
        } else if (lost.count(key) != 0 && (line.kind == "begin" || (line.kind == "event" && !isLoss(line.detail) &&
                                                                     line.detail != "suspended"))) {
          invariant.violations.push_back(absl::StrCat(line.resource, ": client ", c, " was told token ", line.token,
                                                      " was lost, then held it again (", line.kind, " ", line.detail,
                                                      ")"));
        }
      }
    }
  }
}

double percentile(std::vector<double> samples, double p) {
  if (samples.empty()) return 0;
  std::sort(samples.begin(), samples.end());
  size_t rank = static_cast<size_t>(std::ceil(p * static_cast<double>(samples.size())));
  return samples[std::min(samples.size() - 1, rank == 0 ? 0 : rank - 1)];
}

}  // namespace

size_t Verdict::violations() const {
  size_t total = 0;
  for (const auto& invariant : invariants) total += invariant.violations.size();
  return total;
}

Verdict check(const RunRecord& run) {
  const std::vector<Belief> beliefs = beliefsOf(run);
  Verdict verdict;
  verdict.invariants = {
      {"I1", "the fenced resource never accepted a stale token", 0, {}},
      {"I2", "no two clients held the same lock at once", 0, {}},
      {"I3", "no two clients were primary of the same election at once", 0, {}},
      {"I4", "what a dead or hung client held was free within its bound", 0, {}},
      {"I5", "no client missed a LOST, none held again what it was told it lost", 0, {}},
  };
  checkFencing(run, verdict, verdict.invariants[0]);
  checkExclusive(run, beliefs, "lock/", verdict.invariants[1]);
  checkExclusive(run, beliefs, "election/", verdict.invariants[2]);
  checkRelease(run, beliefs, verdict, verdict.invariants[3]);
  checkEvents(run, beliefs, verdict.invariants[4]);
  return verdict;
}

std::string report(const RunRecord& run, const Verdict& verdict, uint64_t seed) {
  std::string out = absl::StrCat("seed ", seed, " (replay with --seed ", seed, ")\n\n");
  absl::StrAppend(&out, "| fault | injected | skipped |\n|---|---|---|\n");
  for (FaultKind kind : allFaults()) {
    int injected = 0;
    int skipped = 0;
    std::string why;
    for (const auto& fault : run.faults) {
      if (fault.kind != kind) continue;
      (fault.injected ? injected : skipped)++;
      if (!fault.injected) why = fault.note;
    }
    absl::StrAppend(&out, "| ", faultName(kind), " | ", injected, " | ", skipped,
                    why.empty() ? "" : absl::StrCat(" (", why, ")"), " |\n");
  }
  absl::StrAppend(&out, "\n| invariant | checked | violations |\n|---|---|---|\n");
  for (const auto& invariant : verdict.invariants) {
    absl::StrAppend(&out, "| ", invariant.name, " ", invariant.what, " | ", invariant.checked, " | ",
                    invariant.violations.size(), " |\n");
  }
  absl::StrAppend(&out, "\nwrites: ", verdict.writes, ", of which ", verdict.stale_writes_fenced,
                  " stale ones were refused by the fence\n");
  absl::StrAppend(&out, "\n| after | bound ms | n | p50 ms | p99 ms | max ms |\n|---|---|---|---|---|---|\n");
  for (const auto& timing : verdict.timings) {
    absl::StrAppend(&out, "| ", timing.label, " | ", timing.bound_ms, " | ", timing.samples.size(), " | ",
                    absl::StrFormat("%.1f | %.1f | %.1f", percentile(timing.samples, 0.5),
                                    percentile(timing.samples, 0.99), percentile(timing.samples, 1.0)),
                    " |\n");
  }
  for (const auto& invariant : verdict.invariants) {
    for (size_t i = 0; i < invariant.violations.size() && i < kViolationsShown; ++i) {
      absl::StrAppend(&out, invariant.name, " violation: ", invariant.violations[i], "\n");
    }
    if (invariant.violations.size() > kViolationsShown) {
      absl::StrAppend(&out, invariant.name, ": ", invariant.violations.size() - kViolationsShown, " more\n");
    }
  }
  return out;
}

}  // namespace coordd::faults
