#pragma once

// Checks of invariants: a broken one is a bug in coordd, and the process
// stops at once, naming the check, rather than run on with corrupt state.
// (Debian 12's Abseil predates ABSL_CHECK.)

#include <cstdio>
#include <cstdlib>

namespace coordd {

[[noreturn]] inline void checkFailed(const char* condition, const char* file, int line) {
  std::fprintf(stderr, "%s:%d: invariant broken: %s\n", file, line, condition);
  std::fflush(stderr);
  std::abort();
}

#define COORDD_CHECK(condition)                                              \
  do {                                                                       \
    if (!(condition)) ::coordd::checkFailed(#condition, __FILE__, __LINE__); \
  } while (false)

// The value of `key` in `map`, which an invariant says is there.
template <typename Map, typename Key>
auto& mustFind(Map& map, const Key& key) {
  auto it = map.find(key);
  COORDD_CHECK(it != map.end());
  return it->second;
}

}  // namespace coordd
