#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "backend/keeper/memory_keeper.h"
#include "backend/recipes/keeper_backend.h"
#include "core/core.h"
#include "world.h"

namespace coordd::sim {

// How many faults of each kind a run injected.
using FaultCounts = std::map<std::string, int64_t>;

struct SimOptions {
  bool unsafe = false;                    // two clients ignore SUSPENDED, LOST and the lease, and write unfenced
  std::chrono::milliseconds chaos{8000};  // faults are injected this long
  int daemons = 3;
  int clients = 6;
  bool trace_keeper = false;  // every create and delete in the trace (slow: for replaying one seed)
};

// What one seed found.
struct SeedResult {
  std::optional<std::string> violation;  // the first broken invariant, if any
  std::vector<std::string> trace;        // the steps before it
  int64_t steps = 0;
  FaultCounts faults;
  int64_t grants = 0;        // locks granted to clients
  int64_t primaryships = 0;  // times a client became primary
  int64_t writes = 0;        // fenced writes accepted
  int64_t multis = 0;        // group commits: creates and deletes sent as one transaction
};

// One seed: simulated daemons (the real Core and the real recipes) share one
// in-memory ensemble; simulated clients drive the cores through the calls
// the gRPC services make, while the world injects faults; the invariants are
// checked after every step, on simulated time, with the client lease rule.
//
// I1  the fenced resource never accepted a stale token;
// I2  no two clients believed they held one lock at the same moment;
// I3  no two clients believed they were primary of one election;
// L1  once the faults stop, every daemon is connected and serving;
// L2  then every lock can be taken by a new blocking acquire;
// L3  then every election with candidates has a primary;
// L4  no daemon floods the keeper (more than 3000 calls in a simulated second).
// L5  a client opened once the faults are over never has its lease run out;
// L6  once settled, what a daemon holds for a session its client knows of,
//     and no lock or campaign call is left that nobody will end.
SeedResult runSeed(uint64_t seed, const SimOptions& options);

}  // namespace coordd::sim
