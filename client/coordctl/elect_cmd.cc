// coordctl elect NAME [--value V] [--grace DUR] -- CMD...

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
PRIMARY: CMD starts when coordctl becomes primary and gets SIGTERM (SIGKILL
after the grace period) as soon as the primaryship is SUSPENDED (link to the
coordinator in doubt, or coordd silent), TERMINATED or handed over
(SECONDARY, e.g. after `coordctl elections step-down`). coordctl keeps
campaigning meanwhile, so CMD starts again when it is primary again, with the
new term. If coordd restarts, coordctl opens a new session and campaigns
again. Every change of state is printed on stderr.

coordctl exits when CMD exits by itself (it then resigns, and exits with
CMD's code), or when it gets SIGTERM, SIGINT or SIGHUP: it stops CMD as above
(SIGKILL at once on a second signal), resigns, and exits with CMD's code,
which is 143 if CMD was killed by that SIGTERM and 0 if CMD was not running.
CMD dies with coordctl even on `kill -9` (parent-death signal).

CMD runs in its own process group with these variables added:
  COORDD_ELECTION=NAME
  COORDD_TERM=<term>   strictly increasing across primaries; a fencing token

Options:
  --value V     published with the candidacy, e.g. this instance's address;
                shown by `coordctl leader NAME`
  --grace DUR   time between SIGTERM and SIGKILL when stopping CMD (default 5s)

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
  Elector(const Invocation& invocation, absl::Duration grace, EventWaiter& waiter, Client& client)
      : invocation_(invocation), name_(invocation.args[0]), grace_(grace), waiter_(waiter), client_(client) {}

  int run() {
    for (;;) {
      if (std::optional<int> code = step()) return *code;
      const EventWaiter::Event event = waiter_.wait(retry_at_);
      if (event.kind == EventWaiter::Event::Kind::kChild && child_) {
        if (std::optional<int> code = finishIfChildExited()) return *code;
      } else if (event.kind == EventWaiter::Event::Kind::kSignal) {
        report({{"event", "signal"}, {"signal", signalName(event.signal)}},
               absl::StrCat("got ", signalName(event.signal)));
        return finish(child_ ? stopChild("coordctl is stopping", event.signal).exit_code : kExitOk);
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
      if (std::optional<int> code = stopChildUnlessInterrupted("session ended")) return code;
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
    if (child_ && (!primary || state.term != child_term_)) {
      if (std::optional<int> code = stopChildUnlessInterrupted(primary ? "new term" : toString(state.status))) {
        return code;
      }
    }
    if (primary && !child_) {
      absl::StatusOr<Child> child =
          Child::start(invocation_.argv, {{"COORDD_ELECTION", name_}, {"COORDD_TERM", absl::StrCat(state.term)}});
      if (!child.ok()) {
        fail("run CMD", child.status());
        return finish(Child::exitCodeFor(child.status()));
      }
      child_ = *std::move(child);
      child_term_ = state.term;
      report({{"event", "cmd_started"}, {"pid", child_->pid()}, {"term", state.term}},
             absl::StrCat("started CMD (pid ", child_->pid(), ") as primary, term ", state.term));
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
          openSupervisorSession(client_, "elect", invocation_.argv, waiter_);
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

  Child::Stopped stopChild(absl::string_view why, int cause_signal = 0) {
    report({{"event", "cmd_stopping"}, {"pid", child_->pid()}, {"why", why}},
           absl::StrCat("stopping CMD (pid ", child_->pid(), "): ", why));
    const Child::Stopped stopped = child_->stop(waiter_, grace_, cause_signal);
    report({{"event", "cmd_stopped"}, {"exit_code", stopped.exit_code}},
           absl::StrCat("CMD stopped with code ", stopped.exit_code));
    child_.reset();
    return stopped;
  }

  // If CMD has exited by itself: reports it and ends coordctl with its code.
  std::optional<int> finishIfChildExited() {
    const std::optional<int> code = child_->poll();
    if (!code) return std::nullopt;
    report({{"event", "cmd_exited"}, {"exit_code", *code}},
           absl::StrCat("CMD exited with code ", *code, "; resigning"));
    child_.reset();
    return finish(*code);
  }

  // Stops CMD because the primaryship went; if coordctl was signalled
  // meanwhile, or CMD had already exited by itself, the exit code to end with.
  std::optional<int> stopChildUnlessInterrupted(absl::string_view why) {
    if (!child_) return std::nullopt;
    // Its exit and the status change came in the same wake-up: the exit
    // was not caused by stopping it.
    if (std::optional<int> code = finishIfChildExited()) return code;
    const Child::Stopped stopped = stopChild(why);
    if (stopped.interrupted_by == 0) return std::nullopt;
    return finish(stopped.exit_code);
  }

  // Stops CMD if it still runs, resigns and closes the session; returns `code`.
  int finish(int code) {
    if (child_) stopChild("coordctl is exiting");
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
  const absl::Duration grace_;
  EventWaiter& waiter_;
  Client& client_;
  std::unique_ptr<Session> session_;
  std::unique_ptr<Election> election_;
  std::optional<Child> child_;
  int64_t child_term_ = 0;
  std::optional<ElectionState> announced_;  // last state printed
  std::optional<Clock::time_point> retry_at_;
  absl::Duration retry_delay_ = kFirstRetry;
  std::string last_error_;  // of the failing retries, reported once
};

int runElect(const Invocation& invocation) {
  const absl::StatusOr<absl::Duration> grace = invocation.duration("grace", kDefaultGrace);
  if (!grace.ok()) return usageError(invocation, grace.status().message());
  absl::StatusOr<std::unique_ptr<EventWaiter>> waiter = EventWaiter::create();
  if (!waiter.ok()) return fail("set up signal handling", waiter.status());
  absl::StatusOr<std::unique_ptr<Client>> client = Client::connect(invocation.address);
  if (!client.ok()) return fail("connect", client.status());
  return Elector(invocation, *grace, **waiter, **client).run();
}

}  // namespace

Command electCommand() {
  return Command{"elect",
                 "run a command only while primary of an election",
                 "elect NAME [--value V] [--grace DUR] -- CMD [ARG...]",
                 kHelp,
                 {{"value", "V"}, {"grace", "DUR"}},
                 1,
                 1,
                 true,
                 runElect};
}

}  // namespace coordd::ctl
