#pragma once

// Supervising the CMD of `lock` and `elect`: event-driven waiting for
// signals, the keeper and client-library callbacks; stopping the tree.

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "boot_timer.h"
#include "coordd/client.h"
#include "cli.h"
#include "keeper.h"

namespace coordd::ctl {

using Clock = BootClock;

// Waits, without polling, for what a supervising command reacts to:
// SIGINT/SIGTERM/SIGHUP, SIGCHLD, a readable file (the keeper's socket),
// and notify() from any thread.
//
// NOTE: create it before any other thread exists (before Client::connect).
// It blocks those signals in the calling thread for the rest of the process;
// only threads created afterwards inherit the mask, so the signals reach its
// signalfd and not some gRPC thread's default handler.
class EventWaiter {
 public:
  struct Event {
    // kChild: SIGCHLD or the watched file is readable.
    enum class Kind { kNotified, kChild, kSignal, kTimeout } kind;
    int signal = 0;  // kSignal: which
  };

  // `watched`: a file descriptor whose readability is a kChild event (none
  // if negative).
  static absl::StatusOr<std::unique_ptr<EventWaiter>> create(int watched = -1);
  ~EventWaiter();
  EventWaiter(const EventWaiter&) = delete;
  EventWaiter& operator=(const EventWaiter&) = delete;

  // Wakes wait(). Thread-safe and cheap: fit for library callbacks.
  void notify();
  // The next event, or kTimeout at `deadline` (none: wait indefinitely).
  Event wait(std::optional<Clock::time_point> deadline = std::nullopt);

 private:
  EventWaiter(int signal_fd, int event_fd, int watched)
      : signal_fd_(signal_fd), event_fd_(event_fd), watched_(watched) {}

  const int signal_fd_;
  const int event_fd_;
  const int watched_;
  BootTimer timer_;  // the deadline of wait()
};

// Stops the keeper's tree and waits until it is gone: SIGTERM and SIGKILL
// after the grace (or at the end of the lease's margin, if sooner), or SIGKILL
// at once with `now`, on a second termination signal (`cause_signal`, if
// stopping because of one, is the first), or once `hold_gone` says the hold
// may be someone else's (lost, not only suspended). The keeper's own reports
// are printed as they come.
struct Stopped {
  int exit_code = 0;       // CMD's, as Keeper::exitCode() (kExitError if unknown)
  int interrupted_by = 0;  // a termination signal that arrived meanwhile
};
Stopped stopTree(Keeper& keeper, EventWaiter& waiter, bool json, bool now, int cause_signal = 0,
                 const std::function<bool()>& hold_gone = {});

// Prints what the keeper did on its own (signals it sent for the lease, or
// that it died).
void reportKeeper(const std::vector<Keeper::Report>& reports, bool json, Keeper& keeper);

// --ttl: the session's ttl (default 10s, 1s to 300s).
absl::StatusOr<absl::Duration> sessionTtl(const Invocation& invocation);

// "SIGTERM" etc.
std::string signalName(int signal);

// A session for a supervising command: owner "coordctl-KIND@HOST:PID",
// attributes host, pid and command, ttl `ttl`; the keeper named as a guard
// process and given every lease renewal; its end notifies `waiter`. Both
// must outlive it.
absl::StatusOr<std::unique_ptr<Session>> openSupervisorSession(Client& client, absl::string_view kind,
                                                               const std::vector<std::string>& argv, absl::Duration ttl,
                                                               EventWaiter& waiter, Keeper& keeper);

}  // namespace coordd::ctl
