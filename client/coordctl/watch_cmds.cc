// coordctl leader NAME, coordctl observe NAME: who is primary, once or live.

#include <mutex>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "commands.h"
#include "output.h"
#include "supervise.h"

namespace coordd::ctl {
namespace {

constexpr char kLeaderHelp[] = R"(Prints the current primary of the election NAME: its owner (label, client
session, daemon node), the value it published and its term. No session is
needed; anyone may ask.

Output:
  text   NAME: primary LABEL (session S, node N), term T, value "V"
         NAME: no primary
  --json {"election":..,"has_leader":true,"owner":{"node_id","session_id",
         "owner","attributes"},"value":..,"term":..}

Exit codes: 0 answered (with or without a primary), 1 error, 2 bad usage.

Example:
  coordctl leader discovery
)";

constexpr char kObserveHelp[] = R"(Streams the primary of the election NAME: first the current one, then one
line per change, each with its time, until interrupted (SIGINT/SIGTERM end it
cleanly, exit 0) or until coordd goes away (exit 1).

Output: as `coordctl leader`, prefixed with an RFC 3339 time; with --json a
"time" field is added to each object.

Example:
  coordctl observe discovery --json | jq .owner.owner
)";

int runLeader(const Invocation& invocation) {
  const std::string& name = invocation.args[0];
  absl::StatusOr<std::unique_ptr<Client>> client = connect(invocation);
  if (!client.ok()) return fail("connect", client.status());
  absl::StatusOr<std::optional<LeaderInfo>> leader = (*client)->leader(name);
  if (!leader.ok()) return fail(absl::StrCat("leader ", name), leader.status());
  if (invocation.json) {
    printJson(leaderJson(name, *leader));
  } else {
    printLine(leaderText(name, *leader));
  }
  return kExitOk;
}

int runObserve(const Invocation& invocation) {
  const std::string& name = invocation.args[0];
  absl::StatusOr<std::unique_ptr<EventWaiter>> waiter = EventWaiter::create();
  if (!waiter.ok()) return fail("set up signal handling", waiter.status());
  absl::StatusOr<std::unique_ptr<Client>> client = connect(invocation);
  if (!client.ok()) return fail("connect", client.status());

  std::mutex mu;
  std::optional<absl::Status> ended;
  const auto on_change = [&](const std::optional<LeaderInfo>& leader) {
    const int64_t now_ms = absl::ToUnixMillis(absl::Now());
    if (invocation.json) {
      nlohmann::json line = leaderJson(name, leader);
      line["time"] = timeText(now_ms);
      printJson(line);
    } else {
      printLine(absl::StrCat(timeText(now_ms), " ", leaderText(name, leader)));
    }
  };
  const auto on_end = [&](const absl::Status& status) {
    std::lock_guard<std::mutex> lock(mu);
    ended = status;
    (*waiter)->notify();
  };
  absl::StatusOr<std::unique_ptr<Observer>> observer = (*client)->observe(name, on_change, on_end);
  if (!observer.ok()) return fail(absl::StrCat("observe ", name), observer.status());

  for (;;) {
    const EventWaiter::Event event = (*waiter)->wait();
    if (event.kind == EventWaiter::Event::Kind::kSignal) return kExitOk;  // the Observer cancels the stream
    std::lock_guard<std::mutex> lock(mu);
    if (ended) {
      return fail(absl::StrCat("observe ", name),
                  ended->ok() ? absl::UnavailableError("coordd closed the stream") : *ended);
    }
  }
}

}  // namespace

Command leaderCommand() {
  return Command{"leader", "print the current primary of an election", "leader NAME", kLeaderHelp, {}, 1, 1, false,
                 runLeader};
}

Command observeCommand() {
  return Command{
      "observe", "stream the primary of an election as it changes", "observe NAME", kObserveHelp, {}, 1, 1, false,
      runObserve};
}

}  // namespace coordd::ctl
