#pragma once

// The watchdog of `lock` and `elect`: a process of its own that runs CMD,
// keeps every process CMD starts under it, holds the lease, and ends the
// whole tree in time, whether or not coordctl still runs.

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "coordd/types.h"

namespace coordd::ctl {

// SIGKILL reaches the tree this long before the end of the margin (when the
// margin allows), so that it is gone, not only signalled, by then.
inline constexpr std::chrono::milliseconds kKillLead{100};

// The keeper, seen from coordctl.
//
// NOTE: the design.
// * Forked from coordctl before any thread exists, so it runs as a plain
//   single-threaded program; it execs nothing but CMD.
// * It is CMD's parent and a child subreaper (PR_SET_CHILD_SUBREAPER): every
//   process CMD starts, whatever process group or session it moves to,
//   stays its descendant and is reaped by it. "The tree is gone" means the
//   keeper has no child left. Stopping signals every descendant found in
//   /proc, each through a pidfd checked to still be a descendant.
// * The lease coordctl passes on from the daemon bounds the tree: when it
//   runs out, SIGTERM; at the end of its margin less kKillLead, SIGKILL, and
//   again every 10 ms until the tree is gone. Asked to stop, the keeper sends
//   SIGTERM and SIGKILL after `grace`, or at the margin's end if sooner.
// * It lives in a process group of its own and ignores SIGINT, SIGTERM,
//   SIGHUP, SIGQUIT and the job-control signals, so Ctrl-C, Ctrl-Z or a signal
//   to coordctl's group leave it to do its work. When coordctl goes (exit,
//   kill -9, crash: its socket closes) it stops the tree as if asked, then
//   exits. If the keeper itself is killed, CMD dies by its parent-death
//   signal and coordctl, a subreaper too, ends what is left.
class Keeper {
 public:
  struct Report {
    enum class Kind {
      kStarted,      // CMD runs as `pid`
      kStartFailed,  // CMD could not run: `code` 127 not found, 126 otherwise; `text` why
      kExited,       // CMD itself exited with `code` (128+N: killed by signal N)
      kSignalled,    // the keeper sent `code` (a signal) to the tree; `text` why
      kGone,         // the tree is gone: every process of it has exited
      kDied,         // the keeper is gone
    };
    Kind kind;
    int pid = 0;
    int code = 0;
    std::string text;
    bool for_lease = false;  // kSignalled: the keeper acted because the lease ran out
  };

  // Forks the keeper for running `argv` (PATH lookup for argv[0]) with
  // `grace` between SIGTERM and SIGKILL. Call before any thread exists.
  static absl::StatusOr<std::unique_ptr<Keeper>> spawn(std::vector<std::string> argv, absl::Duration grace);
  // Closes the socket: the keeper stops what is left of the tree and exits;
  // then reaps it.
  ~Keeper();
  Keeper(const Keeper&) = delete;
  Keeper& operator=(const Keeper&) = delete;

  pid_t pid() const { return pid_; }
  // Readable when reports are waiting (or the keeper died).
  int fd() const { return fd_; }

  // Passes a renewed lease on. Thread-safe, cheap: fit for library callbacks.
  void renew(const Lease& lease);
  // Starts CMD with `env` added, bounded by `lease`; no tree may be running.
  // Returns its pid, or NOT_FOUND / PERMISSION_DENIED (see exitCodeFor), or
  // ABORTED if the keeper died.
  absl::StatusOr<pid_t> run(const std::vector<std::pair<std::string, std::string>>& env, const Lease& lease);
  // SIGTERM to the tree now and SIGKILL after the grace (or the margin's end,
  // if sooner); with `now`, SIGKILL at once.
  void stop(bool now);
  // The reports that have come, without waiting; updates the state below.
  // When the keeper is found dead, what is left of the tree (coordctl's
  // children now: it is a subreaper) is killed and reaped at once.
  std::vector<Report> read();

  // A tree started by run() is not gone yet.
  bool running() const { return running_; }
  // CMD's own exit code in the latest run, once it has exited.
  std::optional<int> exitCode() const { return exit_code_; }
  bool died() const { return died_; }
  // Reports read while run() waited for its answer, not yet returned by
  // read(): the socket will not wake anyone for them.
  bool hasReports() const { return !early_.empty(); }
  // The keeper stopped the latest tree on its own, the lease having run out
  // (not asked to, not for CMD's leftovers).
  bool stoppedForLease() const { return stopped_for_lease_; }

  // The exit code for a run() error: 127 not found, 126 not executable, 1
  // otherwise.
  static int exitCodeFor(const absl::Status& start_error);

 private:
  Keeper(pid_t pid, int fd) : pid_(pid), fd_(fd) {}
  void send(const void* message, size_t size, int flags = 0);
  void apply(const Report& report);

  const pid_t pid_;
  const int fd_;
  std::mutex send_mu_;         // renew() comes from the library's thread
  std::vector<Report> early_;  // reports read while run() waited for its answer
  bool running_ = false;
  std::optional<int> exit_code_;
  bool died_ = false;
  bool stopped_for_lease_ = false;
};

// Ends every descendant of this process and reaps them all (SIGKILL, then
// waits until it has no child left). For coordctl when its keeper died.
void killAllDescendants();

}  // namespace coordd::ctl
