#pragma once

#include <map>
#include <string>
#include <vector>

#include "scenario.h"

namespace coordd::faults {

struct Invariant {
  std::string name;
  std::string what;
  int64_t checked = 0;
  std::vector<std::string> violations;
};

// Release or failover times after faults of one kind, in milliseconds.
struct Timing {
  std::string label;
  int64_t bound_ms = 0;
  std::vector<double> samples;
};

struct Verdict {
  std::vector<Invariant> invariants;  // I1..I5
  std::vector<Timing> timings;
  int64_t stale_writes_fenced = 0;  // rejected by the resource: the fence at work
  int64_t writes = 0;
  size_t violations() const;
};

// Checks a run against the invariants:
// I1 the fenced resource never accepted a stale token;
// I2 no two clients believed they held the same lock at once;
// I3 no two clients believed they were primary of the same election at once;
// I4 what a dead or hung client held was free again within its bound;
// I5 no client missed a LOST, and none was told LOST of what it kept.
Verdict check(const RunRecord& run);

// The table of faults, invariants and timings.
std::string report(const RunRecord& run, const Verdict& verdict, uint64_t seed);

}  // namespace coordd::faults
