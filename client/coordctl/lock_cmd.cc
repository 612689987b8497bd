// coordctl lock NAME [--wait DUR] [--grace DUR] -- CMD...

#include <atomic>
#include <mutex>
#include <optional>
#include <thread>

#include "absl/strings/str_cat.h"
#include "commands.h"
#include "output.h"
#include "supervise.h"

namespace coordd::ctl {
namespace {

constexpr absl::Duration kDefaultGrace = absl::Seconds(5);

constexpr char kHelp[] = R"(Runs CMD while holding the lock NAME, cluster-wide, and releases it when CMD
exits. Without --wait the lock is tried once: if someone else holds it, the
holder is printed and coordctl exits 75 without running CMD (the task is
dropped, as intended for exclusive periodic jobs).

CMD runs in its own process group with these variables added:
  COORDD_LOCK=NAME
  COORDD_FENCING_TOKEN=<token>   strictly increasing across holders; pass it
                                 to resources that can reject stale writers
If the lock is lost or suspended while CMD runs (coordinator session expired,
forced release by an admin, coordd unreachable), CMD's process group gets
SIGTERM at once, SIGKILL after the grace period, and coordctl exits 76.
SIGTERM, SIGINT or SIGHUP to coordctl is forwarded to CMD as SIGTERM (SIGKILL
after the grace period, or at once on a second signal); coordctl then
releases the lock and exits with CMD's code. CMD dies with coordctl even on
`kill -9` (parent-death signal). CMD runs outside the terminal's foreground
process group, so it must not read from the terminal.

Options:
  --wait DUR    wait up to DUR for the lock, in FIFO order with other waiters
                (e.g. 30s, 5m); default: do not wait
  --grace DUR   time between SIGTERM and SIGKILL when stopping CMD (default 5s)

Exit codes:
  CMD's exit code (128+N if signal N killed it)
  1    error (coordd unreachable, ...)   2    bad usage
  75   the lock is held by someone else (or still was after --wait)
  76   the lock was lost while CMD ran
  126  CMD cannot be executed            127  CMD not found
  128+N  signal N arrived while waiting for the lock

Example:
  coordctl lock nightly-report --wait 10m -- ./report.sh --full
)";

// The lock, or the exit code to end with when there is none.
struct Acquired {
  std::optional<LockGuard> guard;
  int exit_code = kExitOk;
};

Acquired tryOnce(const Invocation& invocation, Session& session, const LockOptions& options) {
  const std::string& name = invocation.args[0];
  absl::StatusOr<TryLockResult> result = session.tryLock(name, options);
  if (!result.ok()) return {std::nullopt, fail(absl::StrCat("lock ", name), result.status())};
  if (!result->acquired()) {
    report(invocation.json, {{"event", "not_acquired"}, {"lock", name}, {"holder", ownerJson(result->holder)}},
           absl::StrCat("lock ", name, " is held by ", ownerText(result->holder)));
    return {std::nullopt, kExitNotAcquired};
  }
  return {std::move(result->guard), kExitOk};
}

// The blocking acquire runs on a helper thread so that a signal can end the
// wait: closing the session cancels the call.
Acquired waitFor(const Invocation& invocation, Session& session, absl::Duration wait, const LockOptions& options,
                 EventWaiter& waiter) {
  const std::string& name = invocation.args[0];
  std::mutex mu;
  std::optional<absl::StatusOr<LockGuard>> outcome;
  std::thread acquirer([&] {
    absl::StatusOr<LockGuard> guard = session.lock(name, wait, options);
    std::lock_guard<std::mutex> lock(mu);
    outcome = std::move(guard);
    waiter.notify();
  });
  const auto done = [&] {
    std::lock_guard<std::mutex> lock(mu);
    return outcome.has_value();
  };
  while (!done()) {
    const EventWaiter::Event event = waiter.wait();
    if (event.kind == EventWaiter::Event::Kind::kSignal) {
      report(invocation.json, {{"event", "signal"}, {"signal", signalName(event.signal)}, {"waiting_for", name}},
             absl::StrCat("got ", signalName(event.signal), " while waiting for lock ", name));
      session.close().IgnoreError();
      acquirer.join();
      return {std::nullopt, 128 + event.signal};
    }
  }
  acquirer.join();
  if (outcome->ok()) return {*std::move(*outcome), kExitOk};
  // Name the holder: one more try asks the daemon who it is (and takes the
  // lock if it has just become free with nobody queued).
  if (absl::IsDeadlineExceeded(outcome->status())) return tryOnce(invocation, session, options);
  return {std::nullopt, fail(absl::StrCat("lock ", name), outcome->status())};
}

int runLock(const Invocation& invocation) {
  const std::string& name = invocation.args[0];
  const absl::StatusOr<absl::Duration> wait = invocation.duration("wait", absl::ZeroDuration());
  if (!wait.ok()) return usageError(invocation, wait.status().message());
  const absl::StatusOr<absl::Duration> grace = invocation.duration("grace", kDefaultGrace);
  if (!grace.ok()) return usageError(invocation, grace.status().message());

  absl::StatusOr<std::unique_ptr<EventWaiter>> waiter = EventWaiter::create();
  if (!waiter.ok()) return fail("set up signal handling", waiter.status());
  absl::StatusOr<std::unique_ptr<Client>> client = Client::connect(invocation.address);
  if (!client.ok()) return fail("connect", client.status());
  // Sticky: a loss can come and go (suspended, then held again) between two
  // wake-ups, or in the wake-up that reaps CMD. Declared before the session,
  // whose callbacks set it.
  std::atomic<bool> was_not_held{false};
  absl::StatusOr<std::unique_ptr<Session>> session = openSupervisorSession(**client, "lock", invocation.argv, **waiter);
  if (!session.ok()) return fail("open session", session.status());

  LockOptions options;
  options.on_change = [events = waiter->get(), &was_not_held](LockState state, absl::string_view) {
    if (state != LockState::kHeld) was_not_held.store(true);
    events->notify();
  };
  Acquired acquired = *wait > absl::ZeroDuration() ? waitFor(invocation, **session, *wait, options, **waiter)
                                                   : tryOnce(invocation, **session, options);
  if (!acquired.guard) return acquired.exit_code;
  LockGuard& guard = *acquired.guard;
  // Suspended counts as lost: the cluster may hand the lock to another holder
  // before the link recovers, and CMD cannot be un-run.
  const auto reportLost = [&](absl::string_view then) {
    report(invocation.json,
           {{"event", "lock_lost"}, {"lock", name}, {"state", toString(guard.state())}, {"reason", guard.reason()}},
           absl::StrCat("lock ", name, " ", toString(guard.state()), " (", guard.reason(), ")", then));
  };
  // Closing the session releases what may be left of a lost lock in one call,
  // and skips the daemon if it has gone silent. Only losses from here on
  // count against CMD, which has not run yet.
  was_not_held.store(false);
  if (!guard.held()) {
    reportLost("");
    (*session)->close().IgnoreError();
    return kExitLockLost;
  }

  absl::StatusOr<Child> child =
      Child::start(invocation.argv, {{"COORDD_LOCK", name}, {"COORDD_FENCING_TOKEN", absl::StrCat(guard.token())}});
  if (!child.ok()) {
    fail("run CMD", child.status());
    return Child::exitCodeFor(child.status());
  }
  // The guard's destructor releases the lock after CMD has exited.
  for (;;) {
    const std::optional<int> code = child->poll();
    // Checked after poll(): a loss before CMD exited shows by now.
    if (!guard.held()) was_not_held.store(true);
    if (was_not_held.load() && code) {
      reportLost(absl::StrCat(": CMD (pid ", child->pid(), ") exited meanwhile"));
      (*session)->close().IgnoreError();
      return kExitLockLost;
    }
    if (code) return *code;
    if (was_not_held.load()) {
      reportLost(absl::StrCat(": stopping CMD (pid ", child->pid(), ")"));
      child->stop(**waiter, *grace);
      (*session)->close().IgnoreError();
      return kExitLockLost;
    }
    const EventWaiter::Event event = (*waiter)->wait();
    if (event.kind == EventWaiter::Event::Kind::kSignal) {
      report(invocation.json, {{"event", "signal"}, {"signal", signalName(event.signal)}, {"pid", child->pid()}},
             absl::StrCat("got ", signalName(event.signal), ": stopping CMD (pid ", child->pid(), ")"));
      return child->stop(**waiter, *grace, event.signal).exit_code;
    }
  }
}

}  // namespace

Command lockCommand() {
  return Command{"lock",
                 "run a command while holding a lock",
                 "lock NAME [--wait DUR] [--grace DUR] -- CMD [ARG...]",
                 kHelp,
                 {{"wait", "DUR"}, {"grace", "DUR"}},
                 1,
                 1,
                 true,
                 runLock};
}

}  // namespace coordd::ctl
