#pragma once

// Command table, argument parsing, help and the exit-code contract.

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "coordd/client.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace coordd::ctl {

inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitNotAcquired = 75;  // EX_TEMPFAIL: someone else holds the lock
inline constexpr int kExitLockLost = 76;
inline constexpr int kExitCannotExecute = 126;  // as timeout(1), env(1)
inline constexpr int kExitNotFound = 127;

// A command-specific option, written --name or --name=VALUE.
struct OptionSpec {
  absl::string_view name;   // without the dashes
  absl::string_view value;  // placeholder of its value, e.g. "DUR"; empty for a flag
};

struct Invocation;

struct Command {
  absl::string_view name;
  absl::string_view summary;  // one line for `coordctl --help`
  absl::string_view usage;    // synopsis after "coordctl "
  std::string help;           // the rest of `coordctl NAME --help`
  std::vector<OptionSpec> options;
  size_t min_args = 0;  // positional arguments
  size_t max_args = 0;
  bool takes_command = false;  // requires "-- CMD [ARG...]"
  std::function<int(const Invocation&)> run;
};

// A parsed command line.
struct Invocation {
  const Command* command = nullptr;
  std::string address;  // --address; empty: $COORDD_ADDRESS or the default
  bool json = false;    // --json
  std::vector<std::string> args;
  std::map<std::string, std::string, std::less<>> options;
  std::vector<std::string> argv;  // after "--"

  // The value of --option, or `fallback` when absent.
  std::string value(absl::string_view option, std::string fallback = "") const;
  // --option as a duration such as "500ms", "5s", "1m".
  absl::StatusOr<absl::Duration> duration(absl::string_view option, absl::Duration fallback) const;
};

// Parses argv, prints help or a usage error, or runs the command. Returns
// the process exit code.
int runCli(int argc, char** argv, const std::vector<Command>& commands);

// Prints "coordctl: CMD: message" and a pointer to --help; returns kExitUsage.
int usageError(const Invocation& invocation, absl::string_view message);

// Prints "coordctl: what: message"; returns kExitError.
int fail(absl::string_view what, const absl::Status& status);

// The client of the daemon --address names. gRPC stays up for the rest of
// the process, which ends with its command (main): its orderly shutdown when
// the last channel goes (its threads joined one by one) took 6 ms of an
// 11 ms `coordctl lock`, and what the daemon must hear (a release, the
// session's close) is said and answered before a command returns. Called
// after a command's fork and signal mask, as gRPC starts threads.
absl::StatusOr<std::unique_ptr<Client>> connect(const Invocation& invocation);

}  // namespace coordd::ctl
