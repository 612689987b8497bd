#include "lock_command.h"

#include <stdexcept>

#include "absl/strings/str_join.h"
#include "harness.h"
#include "stats.h"

namespace coordd::bench {

double runLockCommandMs(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env) {
  e2e::TempDir dir;
  const Clock::time_point start = Clock::now();
  e2e::Process process(argv, env, dir.file("command"));
  const std::optional<int> code = process.wait(std::chrono::seconds(30));
  const Clock::time_point end = Clock::now();
  if (code != 0) {
    throw std::runtime_error(absl::StrJoin(argv, " ") + ": " + (code ? "exit " + std::to_string(*code) : "timed out") +
                             "\n" + process.err());
  }
  return micros(start, end) / 1000;
}

}  // namespace coordd::bench
