// coordctl elect NAME [--value V] [--grace DUR] [--ttl DUR] -- CMD...

#include <algorithm>
#include <optional>

#include "absl/strings/str_cat.h"
#include "commands.h"
#include "output.h"
#include "supervise.h"

namespace coordd::ctl {
namespace {

constexpr absl::Duration kDefaultGrace = absl::Seconds(5);
// A restarted local daemon should be found again within a few seconds.
constexpr absl::Duration kFirstRetry = absl::Milliseconds(250);
constexpr absl::Duration kMaxRetry = absl::Seconds(2);

constexpr char kHelp[] = R"(Campaigns in the election NAME and runs CMD only while this candidate is the
PRIMARY: CMD starts when coordctl becomes primary and is stopped as soon as
the primaryship is SUSPENDED (link to the coordinator in doubt, or coordd
silent), TERMINATED or handed over (SECONDARY, e.g. after `coordctl
elections step-down`). coordctl keeps campaigning meanwhile, so CMD starts
again when it is primary again, with the new term. If coordd restarts,
coordctl opens a new session and campaigns again. Every change of state is
printed on stderr.

CMD, and every process it starts, is gone (exited and reaped, not only
signalled) before another candidate can be PRIMARY. A watchdog process of
coordctl's runs CMD and keeps every descendant of it (a subreaper: even one
that calls setsid() or double-forks); it holds the lease coordd grants, so it
acts even when coordctl is killed or frozen. Time between SIGTERM and
SIGKILL, with W = min(--ttl, the coordinator's session timeout) and the
margin (about W/3) that remains after the lease before the primaryship can
go elsewhere:
  SECONDARY, TERMINATED, a new term (step-down, session expired):
      none: SIGKILL at once (another candidate may be primary already)
  SUSPENDED (the lease ran out: coordd frozen or unreachable):
      --grace, but SIGKILL no later than 100 ms before the margin ends
  coordctl gets SIGTERM, SIGINT or SIGHUP: --grace (SIGKILL at once on a
      second signal); the lease is renewed meanwhile
  coordctl killed (kill -9, crash): the watchdog sends SIGTERM at once,
      SIGKILL after --grace or 100 ms before the margin ends, whichever is
      first; coordd keeps the candidacy until the watchdog has exited (or for
      the ttl, over TCP or from another pid namespace)
  coordctl frozen (SIGSTOP, Ctrl-Z, hung): the watchdog sends SIGTERM when
      the lease runs out and SIGKILL 100 ms before the margin ends
  the watchdog killed: CMD gets SIGKILL (parent-death signal); coordctl
      kills what is left, resigns and exits 1

coordctl exits when CMD exits by itself and every process it started has
exited too (it then resigns, and exits with CMD's code), or when it gets
SIGTERM, SIGINT or SIGHUP: it stops CMD as above, resigns, and exits with
CMD's code, which is 143 if CMD was killed by that SIGTERM and 0 if CMD was
not running.

CMD runs in its own process group with these variables added:
  COORDD_ELECTION=NAME
  COORDD_TERM=<term>   strictly increasing across primaries; a fencing token

Options:
  --value V     published with the candidacy, e.g. this instance's address;
                shown by `coordctl leader NAME`
  --grace DUR   the most CMD gets between SIGTERM and SIGKILL (default 5s)
  --ttl DUR     the session's ttl: coordd ends it (and the candidacy) when
                coordctl has not pinged for this long (default 10s, 1s-300s)

Exit codes:
  CMD's exit code (128+N if signal N killed it), or 0 if it was not running
  1    error        2    bad usage
  126  CMD cannot be executed            127  CMD not found

Example:
  coordctl elect discovery --value "$(hostname):8080" -- ./discovery --serve
)";

// coordctl elect supervises for as long as it runs: it retries whatever a
// restarting daemon or coordinator may answer (UNAVAILABLE, CANCELLED at
// shutdown, FAILED_PRECONDITION or NOT_FOUND for a session that ended
// meanwhile, ...) and gives up only on what retrying cannot fix.
bool retryable(const absl::Status& status) {
  return !absl::IsInvalidArgument(status) && !absl::IsPermissionDenied(status) && !absl::IsUnimplemented(status) &&
         !absl::IsUnauthenticated(status) && !absl::IsAlreadyExists(status);
}

// The candidacy and CMD, reconciled after every event.
class Elector {
 public:
  Elector(const Invocation& invocation, absl::Duration ttl, EventWaiter& waiter, Client& client, Keeper& keeper)
      : invocation_(invocation),
        name_(invocation.args[0]),
        ttl_(ttl),
        waiter_(waiter),
        client_(client),
        keeper_(keeper) {}

  int run() {
    for (;;) {
      if (std::optional<int> code = step()) return *code;
      // Reports that came with CMD's start were read already: no wake-up
      // will tell of them.
      const EventWaiter::Event event =
          keeper_.hasReports() ? EventWaiter::Event{EventWaiter::Event::Kind::kChild} : waiter_.wait(retry_at_);
      if (event.kind == EventWaiter::Event::Kind::kChild) {
        reportKeeper(keeper_.read(), invocation_.json, keeper_);
        if (keeper_.died()) {
          tree_ = false;
          return finish(kExitError);
        }
        if (std::optional<int> code = finishIfChildExited()) return *code;
      } else if (event.kind == EventWaiter::Event::Kind::kSignal) {
        report({{"event", "signal"}, {"signal", signalName(event.signal)}},
               absl::StrCat("got ", signalName(event.signal)));
        return finish(tree_ ? stopChild("coordctl is stopping", false, event.signal).exit_code : kExitOk);
      }
    }
  }

 private:
  void report(nlohmann::json fields, absl::string_view text) {
    fields["election"] = name_;
    ctl::report(invocation_.json, fields, absl::StrCat("elect ", name_, ": ", text));
  }

  // One reconciliation; an exit code when coordctl must end.
  std::optional<int> step() {
    const bool due = !retry_at_ || Clock::now() >= *retry_at_;
    if (due) retry_at_.reset();

    if (session_ && session_->ended()) {
      if (std::optional<int> code = stopChildUnlessInterrupted("session ended", true)) return code;
      report({{"event", "session_ended"}, {"reason", session_->endReason()}},
             absl::StrCat("session ended (", session_->endReason(), "); campaigning again"));
      election_.reset();
      session_.reset();
      announced_.reset();
    }
    if (!election_) {
      if (!due) return std::nullopt;
      if (absl::Status status = enroll(); !status.ok()) return retryOrFail(status, "campaign");
      succeeded();
    }

    const ElectionState state = election_->state();
    announce(state);
    const bool primary = state.status == ElectionStatus::kPrimary;
    if (tree_ && (!primary || state.term != child_term_)) {
      // Suspended: nobody else can be primary before the margin ends, which
      // bounds the grace. Secondary, terminated or a new term: another
      // candidate may be primary already.
      const bool at_once = state.status != ElectionStatus::kSuspended;
      if (std::optional<int> code =
              stopChildUnlessInterrupted(primary ? "new term" : toString(state.status), at_once)) {
        return code;
      }
    }
    // Not if the lease ran out since the state was read: the library then
    // reports the suspension, which wakes this loop again.
    if (primary && !tree_ && session_->lease().valid_until > Clock::now()) {
      absl::StatusOr<pid_t> pid =
          keeper_.run({{"COORDD_ELECTION", name_}, {"COORDD_TERM", absl::StrCat(state.term)}}, session_->lease());
      if (!pid.ok()) {
        fail("run CMD", pid.status());
        return finish(Keeper::exitCodeFor(pid.status()));
      }
      tree_ = true;
      tree_pid_ = *pid;
      child_term_ = state.term;
      report({{"event", "cmd_started"}, {"pid", tree_pid_}, {"term", state.term}},
             absl::StrCat("started CMD (pid ", tree_pid_, ") as primary, term ", state.term));
    }
    if ((state.status == ElectionStatus::kTerminated || state.status == ElectionStatus::kNotCandidate) && due) {
      // Campaign again, unless the daemon already did (rejoin() treats
      // ALREADY_EXISTS as success).
      if (absl::Status status = election_->rejoin(); !status.ok()) return retryOrFail(status, "rejoin");
      const ElectionStatus now = election_->status();
      if (now == ElectionStatus::kTerminated || now == ElectionStatus::kNotCandidate) {
        scheduleRetry();  // "already a candidate", but not registered yet: ask again later
      } else {
        succeeded();
      }
    }
    return std::nullopt;
  }

  absl::Status enroll() {
    if (!session_) {
      absl::StatusOr<std::unique_ptr<Session>> session =
          openSupervisorSession(client_, "elect", invocation_.argv, ttl_, waiter_, keeper_);
      if (!session.ok()) return session.status();
      session_ = *std::move(session);
    }
    CampaignOptions options;
    options.rejoin = true;
    options.on_change = [waiter = &waiter_](const ElectionState&) { waiter->notify(); };
    absl::StatusOr<std::unique_ptr<Election>> election =
        session_->campaign(name_, invocation_.value("value"), std::move(options));
    if (!election.ok()) return election.status();
    election_ = *std::move(election);
    return absl::OkStatus();
  }

  std::optional<int> retryOrFail(const absl::Status& status, absl::string_view what) {
    if (!retryable(status)) return finish(fail(absl::StrCat(what, " in ", name_), status));
    // A call that failed because the session has just ended is reported as
    // the end of the session, next step.
    const bool session_gone = session_ && session_->ended();
    if (!session_gone && status.message() != last_error_) {  // once per distinct error, not per attempt
      last_error_ = std::string(status.message());
      report({{"event", "retrying"}, {"error", last_error_}},
             absl::StrCat("cannot ", what, " (", last_error_, "); retrying"));
    }
    scheduleRetry();
    return std::nullopt;
  }

  void scheduleRetry() {
    retry_at_ = Clock::now() + absl::ToChronoNanoseconds(retry_delay_);
    retry_delay_ = std::min(retry_delay_ * 2, kMaxRetry);
  }

  void succeeded() {
    retry_delay_ = kFirstRetry;
    last_error_.clear();
  }

  void announce(const ElectionState& state) {
    if (announced_ && announced_->status == state.status && announced_->term == state.term) return;
    announced_ = state;
    std::string text =
        absl::StrCat(toString(state.status), state.term != 0 ? absl::StrCat(" (term ", state.term, ")") : "");
    if (!state.reason.empty()) absl::StrAppend(&text, ": ", state.reason);
    report({{"event", "status"}, {"status", toString(state.status)}, {"term", state.term}, {"reason", state.reason}},
           text);
  }

  // Stops CMD's tree and waits until it is gone; `at_once`: SIGKILL.
  Stopped stopChild(absl::string_view why, bool at_once, int cause_signal = 0) {
    report({{"event", "cmd_stopping"}, {"pid", tree_pid_}, {"why", why}},
           absl::StrCat("stopping CMD (pid ", tree_pid_, "): ", why, at_once ? " (SIGKILL)" : ""));
    // Stepped down, terminated or a new term meanwhile: another candidate may
    // be primary already.
    const auto primaryship_gone = [this] {
      if (!election_) return true;
      const ElectionStatus status = election_->status();
      return (status != ElectionStatus::kPrimary && status != ElectionStatus::kSuspended) ||
             election_->term() != child_term_;
    };
    const Stopped stopped = stopTree(keeper_, waiter_, invocation_.json, at_once, cause_signal, primaryship_gone);
    report({{"event", "cmd_stopped"}, {"exit_code", stopped.exit_code}},
           absl::StrCat("CMD stopped with code ", stopped.exit_code));
    tree_ = false;
    return stopped;
  }

  // If CMD has exited by itself, and every process it started too: reports
  // it and ends coordctl with its code.
  std::optional<int> finishIfChildExited() {
    if (!tree_ || keeper_.running()) return std::nullopt;
    const int code = keeper_.exitCode().value_or(kExitError);
    if (keeper_.stoppedForLease()) {
      // The watchdog ended it, the lease having run out while coordctl did
      // not act (frozen): the primaryship went, campaigning goes on.
      report({{"event", "cmd_stopped"}, {"exit_code", code}},
             absl::StrCat("CMD stopped by the watchdog with code ", code));
      tree_ = false;
      return std::nullopt;
    }
    report({{"event", "cmd_exited"}, {"exit_code", code}}, absl::StrCat("CMD exited with code ", code, "; resigning"));
    tree_ = false;
    return finish(code);
  }

  // Stops CMD because the primaryship went; if coordctl was signalled
  // meanwhile, or CMD had already exited by itself, the exit code to end with.
  std::optional<int> stopChildUnlessInterrupted(absl::string_view why, bool at_once) {
    if (!tree_) return std::nullopt;
    // Its exit and the status change came in the same wake-up: the exit
    // was not caused by stopping it.
    reportKeeper(keeper_.read(), invocation_.json, keeper_);
    if (std::optional<int> code = finishIfChildExited()) return code;
    const Stopped stopped = stopChild(why, at_once);
    if (stopped.interrupted_by == 0) return std::nullopt;
    return finish(stopped.exit_code);
  }

  // Stops CMD if it still runs, resigns and closes the session; returns `code`.
  int finish(int code) {
    if (tree_) stopChild("coordctl is exiting", false);
    if (election_) {
      if (absl::Status status = election_->resign(); !status.ok()) {
        report({{"event", "resign_failed"}, {"error", std::string(status.message())}},
               absl::StrCat("resign failed (", status.message(), "); closing the session withdraws the candidacy"));
      }
    }
    election_.reset();
    if (session_) session_->close().IgnoreError();
    return code;
  }

  const Invocation& invocation_;
  const std::string& name_;
  const absl::Duration ttl_;
  EventWaiter& waiter_;
  Client& client_;
  Keeper& keeper_;
  std::unique_ptr<Session> session_;
  std::unique_ptr<Election> election_;
  bool tree_ = false;  // CMD's tree runs, started for child_term_
  pid_t tree_pid_ = 0;
  int64_t child_term_ = 0;
  std::optional<ElectionState> announced_;  // last state printed
  std::optional<Clock::time_point> retry_at_;
  absl::Duration retry_delay_ = kFirstRetry;
  std::string last_error_;  // of the failing retries, reported once
};

int runElect(const Invocation& invocation) {
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
  return Elector(invocation, *ttl, **waiter, **client, **keeper).run();
}

}  // namespace

Command electCommand() {
  return Command{"elect",
                 "run a command only while primary of an election",
                 "elect NAME [--value V] [--grace DUR] [--ttl DUR] -- CMD [ARG...]",
                 kHelp,
                 {{"value", "V"}, {"grace", "DUR"}, {"ttl", "DUR"}},
                 1,
                 1,
                 true,
                 runElect};
}

}  // namespace coordd::ctl
