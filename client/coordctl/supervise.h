#pragma once

// Supervising the CMD of `lock` and `elect`: event-driven waiting for
// signals, the child and client-library callbacks; starting and stopping
// the child.

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "coordd/client.h"

namespace coordd::ctl {

using Clock = std::chrono::steady_clock;

// Waits, without polling, for what a supervising command reacts to:
// SIGINT/SIGTERM/SIGHUP, SIGCHLD, and notify() from any thread.
//
// NOTE: create it before any other thread exists (before Client::connect).
// It blocks those signals in the calling thread for the rest of the process;
// only threads created afterwards inherit the mask, so the signals reach its
// signalfd and not some gRPC thread's default handler.
class EventWaiter {
 public:
  struct Event {
    enum class Kind { kNotified, kChild, kSignal, kTimeout } kind;
    int signal = 0;  // kSignal: which
  };

  static absl::StatusOr<std::unique_ptr<EventWaiter>> create();
  ~EventWaiter();
  EventWaiter(const EventWaiter&) = delete;
  EventWaiter& operator=(const EventWaiter&) = delete;

  // Wakes wait(). Thread-safe and cheap: fit for library callbacks.
  void notify();
  // The next event, or kTimeout at `deadline` (none: wait indefinitely).
  Event wait(std::optional<Clock::time_point> deadline = std::nullopt);

 private:
  EventWaiter(int signal_fd, int event_fd) : signal_fd_(signal_fd), event_fd_(event_fd) {}

  const int signal_fd_;
  const int event_fd_;
};

// A running CMD, in its own process group (so stopping it stops its
// children too, as timeout(1) does) and with SIGKILL as its parent-death
// signal, so it never outlives coordctl, even after `kill -9`.
class Child {
 public:
  // Result of stop().
  struct Stopped {
    int exit_code = 0;
    int interrupted_by = 0;  // a termination signal that arrived meanwhile
  };

  // Starts argv (PATH lookup for argv[0]) with `env` added to coordctl's
  // environment. NOT_FOUND / PERMISSION_DENIED if it cannot be executed
  // (see exitCodeFor). Call from the main thread only: the parent-death
  // signal fires when the forking *thread* ends.
  static absl::StatusOr<Child> start(const std::vector<std::string>& argv,
                                     const std::vector<std::pair<std::string, std::string>>& env);

  pid_t pid() const { return pid_; }
  // Its exit code if it has exited (128+signal if a signal killed it);
  // reaps it. std::nullopt while it runs.
  std::optional<int> poll();
  // SIGTERM to its process group; SIGKILL after `grace`, or at once on a
  // second termination signal (`cause_signal`, if stopping because of one,
  // is the first). Returns once it has exited and, if other members of its
  // group outlive it, once they have been sent the SIGKILL.
  Stopped stop(EventWaiter& waiter, absl::Duration grace, int cause_signal = 0);

  // The exit code for a start() error: 127 not found, 126 otherwise.
  static int exitCodeFor(const absl::Status& start_error);

 private:
  explicit Child(pid_t pid) : pid_(pid) {}

  pid_t pid_;
  std::optional<int> exit_code_;
};

// "SIGTERM" etc.
std::string signalName(int signal);

// A session for a supervising command: owner "coordctl-KIND@HOST:PID",
// attributes host, pid and command; its end notifies `waiter`, which must
// outlive it.
absl::StatusOr<std::unique_ptr<Session>> openSupervisorSession(Client& client, absl::string_view kind,
                                                               const std::vector<std::string>& argv,
                                                               EventWaiter& waiter);

}  // namespace coordd::ctl
