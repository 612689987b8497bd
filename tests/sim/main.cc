// coordd-sim: coordd's core and recipes under simulated faults, one seed at
// a time, every invariant checked after every step. See RELIABILITY.md.
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/numbers.h"
#include "simulation.h"
#include "spdlog/spdlog.h"

namespace {

constexpr char kUsage[] = R"(usage: coordd-sim [--seeds N] [--first-seed S] [--unsafe] [--chaos-ms MS]

Runs N seeds (default 1000) from S (default 1). Each seed is one simulated
run: 3 daemons (coordd's real Core and recipes) on one in-memory ZooKeeper
ensemble, 6 clients, faults for --chaos-ms (default 8000) of simulated time
(lost answers before and after the request applied, connection losses and
flaps, session expiries, frozen daemons and clients, broken streams,
TryAcquire, Acquire and Campaign calls given up by their callers or
answered after their deadlines (the library then releases or resigns what
they may have got), admin force releases and step-downs), then a quiet period and the liveness
checks. I1-I3, L4 and L5 are checked after every step, L6 once the quiet
period has settled, L1-L3 at its end; a seed stops at its first violation and prints the steps
that led to it. Replay one seed alone with --first-seed S --seeds 1: its trace
then has every create and delete in the ensemble too.

--unsafe   two clients ignore SUSPENDED, LOST and the lease and write
           without a token: the run must catch them (exit 1 if it does not).

The last line is exactly "N seeds, V violations". Exit status: 0 when no
seed broke an invariant (with --unsafe: when at least one did), else 1.
)";

bool number(const char* text, int64_t* out) { return absl::SimpleAtoi(text, out) && *out >= 0; }

}  // namespace

int main(int argc, char** argv) {
  using namespace coordd::sim;
  int64_t seeds = 1000;
  int64_t first = 1;
  int64_t chaos_ms = 8000;
  SimOptions options;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const bool has_value = i + 1 < argc;
    if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (arg == "--unsafe") {
      options.unsafe = true;
    } else if (arg == "--seeds" && has_value && number(argv[i + 1], &seeds) && seeds > 0) {
      ++i;
    } else if (arg == "--first-seed" && has_value && number(argv[i + 1], &first)) {
      ++i;
    } else if (arg == "--chaos-ms" && has_value && number(argv[i + 1], &chaos_ms) && chaos_ms > 0) {
      ++i;
    } else {
      std::fprintf(stderr, "coordd-sim: bad argument '%s' (a flag without its number, or not a flag)\n%s", arg.c_str(),
                   kUsage);
      return 2;
    }
  }
  options.chaos = std::chrono::milliseconds(chaos_ms);
  options.trace_keeper = seeds == 1;
  spdlog::set_level(seeds == 1 && std::getenv("COORDD_SIM_LOG") ? spdlog::level::debug : spdlog::level::off);

  int64_t violations = 0;
  int64_t steps = 0, grants = 0, primaryships = 0, writes = 0, multis = 0;
  FaultCounts faults;
  int printed = 0;
  for (int64_t seed = first; seed < first + seeds; ++seed) {
    SeedResult result = runSeed(static_cast<uint64_t>(seed), options);
    steps += result.steps;
    grants += result.grants;
    primaryships += result.primaryships;
    writes += result.writes;
    multis += result.multis;
    for (const auto& [kind, count] : result.faults) faults[kind] += count;
    if (result.violation) {
      ++violations;
      std::printf("seed %lld: %s\n", static_cast<long long>(seed), result.violation->c_str());
      if (printed++ < 3) {
        for (const auto& line : result.trace) std::printf("    %s\n", line.c_str());
        std::printf("    replay: coordd-sim --first-seed %lld --seeds 1%s\n", static_cast<long long>(seed),
                    options.unsafe ? " --unsafe" : "");
      }
    }
    if ((seed - first + 1) % 1000 == 0) {
      std::printf("... %lld seeds, %lld violations\n", static_cast<long long>(seed - first + 1),
                  static_cast<long long>(violations));
      std::fflush(stdout);
    }
  }
  std::printf("steps: %lld; locks granted: %lld; primaryships: %lld; fenced writes: %lld; group commits: %lld\n",
              static_cast<long long>(steps), static_cast<long long>(grants), static_cast<long long>(primaryships),
              static_cast<long long>(writes), static_cast<long long>(multis));
  for (const auto& [kind, count] : faults)
    std::printf("faults: %s: %lld\n", kind.c_str(), static_cast<long long>(count));
  std::printf("%lld seeds, %lld violations\n", static_cast<long long>(seeds), static_cast<long long>(violations));
  if (options.unsafe) return violations > 0 ? 0 : 1;
  return violations == 0 ? 0 : 1;
}
