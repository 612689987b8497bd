// coordctl lock NAME [--wait DUR] [--grace DUR] [--ttl DUR] -- CMD...

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

CMD, and every process it starts, is gone (exited and reaped, not only
signalled) before anyone else can be granted the lock. A watchdog process
of coordctl's runs CMD and keeps every descendant of it (a subreaper: even
one that calls setsid() or double-forks); it holds the lease coordd grants,
so it acts even when coordctl is killed or frozen. "Stopping CMD" signals
all of those processes; the lock is released once they have all exited,
also when CMD exits by itself and leaves some behind. Time between SIGTERM
and SIGKILL, with W = min(--ttl, the coordinator's session timeout) and the
margin (about W/3) that remains after the lease before the lock can go
elsewhere:
  lock lost (forced release by an admin, coordinator session expired):
      none: SIGKILL at once (the lock may be someone else's already); exit 76
  lease ran out (coordd frozen or unreachable, its link suspended):
      --grace, but SIGKILL no later than 100 ms before the margin ends; exit 76
  coordctl gets SIGTERM, SIGINT or SIGHUP:
      --grace (SIGKILL at once on a second signal); the lease is renewed
      meanwhile; then the lock is released and coordctl exits with CMD's code
  coordctl killed (kill -9, crash):
      the watchdog sends SIGTERM at once, SIGKILL after --grace or 100 ms
      before the margin ends, whichever is first; coordd keeps the lock
      until the watchdog has exited (or for the ttl, where it cannot see the
      processes: over TCP, or from another pid namespace)
  coordctl frozen (SIGSTOP, Ctrl-Z, hung):
      the watchdog sends SIGTERM when the lease runs out and SIGKILL 100 ms
      before the margin ends: about W/3, never more than --grace
  the watchdog killed: CMD gets SIGKILL (parent-death signal); coordctl
      kills what is left and exits 1
CMD runs outside the terminal's foreground process group, so it must not
read from the terminal.

Options:
  --wait DUR    wait up to DUR for the lock, in FIFO order with other waiters
                (e.g. 30s, 5m); default: do not wait
  --grace DUR   the most CMD gets between SIGTERM and SIGKILL (default 5s)
  --ttl DUR     the session's ttl: coordd ends it (and frees the lock) when
                coordctl has not pinged for this long (default 10s, 1s-300s)

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
                 EventWaiter& waiter, Keeper& keeper) {
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
    if (event.kind == EventWaiter::Event::Kind::kChild) {
      reportKeeper(keeper.read(), invocation.json, keeper);
      if (keeper.died()) {  // nothing can run CMD now
        session.close().IgnoreError();
        acquirer.join();
        return {std::nullopt, kExitError};
      }
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
  const absl::StatusOr<absl::Duration> ttl = sessionTtl(invocation);
  if (!ttl.ok()) return usageError(invocation, ttl.status().message());

  // Before any thread exists: the keeper is forked, and signals are blocked.
  absl::StatusOr<std::unique_ptr<Keeper>> keeper = Keeper::spawn(invocation.argv, *grace);
  if (!keeper.ok()) return fail("start the watchdog", keeper.status());
  absl::StatusOr<std::unique_ptr<EventWaiter>> waiter = EventWaiter::create((*keeper)->fd());
  if (!waiter.ok()) return fail("set up signal handling", waiter.status());
  absl::StatusOr<std::unique_ptr<Client>> client = connect(invocation);
  if (!client.ok()) return fail("connect", client.status());
  // Sticky: a loss can come and go (suspended, then held again) between two
  // wake-ups, or in the wake-up that reaps CMD. Declared before the session,
  // whose callbacks set it.
  std::atomic<bool> was_not_held{false};
  absl::StatusOr<std::unique_ptr<Session>> session =
      openSupervisorSession(**client, "lock", invocation.argv, *ttl, **waiter, **keeper);
  if (!session.ok()) return fail("open session", session.status());

  LockOptions options;
  options.on_change = [events = waiter->get(), &was_not_held](LockState state, absl::string_view) {
    if (state != LockState::kHeld) was_not_held.store(true);
    events->notify();
  };
  Acquired acquired = *wait > absl::ZeroDuration() ? waitFor(invocation, **session, *wait, options, **waiter, **keeper)
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

  Keeper& tree = **keeper;
  absl::StatusOr<pid_t> pid =
      tree.run({{"COORDD_LOCK", name}, {"COORDD_FENCING_TOKEN", absl::StrCat(guard.token())}}, (*session)->lease());
  if (!pid.ok()) {
    fail("run CMD", pid.status());
    (*session)->close().IgnoreError();
    return Keeper::exitCodeFor(pid.status());
  }
  // Lost (not only suspended): the lock may be someone else's already.
  const auto lock_gone = [&guard] { return !guard.held() && guard.state() != LockState::kSuspended; };
  // The guard's destructor releases the lock, after the whole tree is gone.
  for (;;) {
    reportKeeper(tree.read(), invocation.json, tree);
    if (tree.died()) {
      (*session)->close().IgnoreError();
      return kExitError;
    }
    // Checked after reading the keeper: a loss before CMD exited shows by now.
    if (!guard.held()) was_not_held.store(true);
    if (!tree.running()) {
      const int code = tree.exitCode().value_or(kExitError);
      if (!was_not_held.load()) return code;
      reportLost(absl::StrCat(": CMD (pid ", *pid, ") exited meanwhile"));
      (*session)->close().IgnoreError();
      return kExitLockLost;
    }
    if (was_not_held.load()) {
      // Suspended: nobody else can have it before the margin ends, which
      // bounds the grace. Lost or released by an admin: it may be someone
      // else's already.
      const bool at_once = lock_gone();
      reportLost(absl::StrCat(": stopping CMD (pid ", *pid, ")", at_once ? " with SIGKILL" : ""));
      stopTree(tree, **waiter, invocation.json, at_once, 0, lock_gone);
      (*session)->close().IgnoreError();
      return kExitLockLost;
    }
    const EventWaiter::Event event = (*waiter)->wait();
    if (event.kind == EventWaiter::Event::Kind::kSignal) {
      report(invocation.json, {{"event", "signal"}, {"signal", signalName(event.signal)}, {"pid", *pid}},
             absl::StrCat("got ", signalName(event.signal), ": stopping CMD (pid ", *pid, ")"));
      return stopTree(tree, **waiter, invocation.json, false, event.signal, lock_gone).exit_code;
    }
  }
}

}  // namespace

Command lockCommand() {
  return Command{"lock",
                 "run a command while holding a lock",
                 "lock NAME [--wait DUR] [--grace DUR] [--ttl DUR] -- CMD [ARG...]",
                 kHelp,
                 {{"wait", "DUR"}, {"grace", "DUR"}, {"ttl", "DUR"}},
                 1,
                 1,
                 true,
                 runLock};
}

}  // namespace coordd::ctl
