// Operator commands: elections, locks, members, status.

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "coordd/admin.h"
#include "coordd/client.h"
#include "commands.h"
#include "output.h"

namespace coordd::ctl {
namespace {

constexpr char kAdminNote[] = R"(Admin calls are allowed on coordd's Unix socket and from TCP peers listed
in its admin.allowed_peers; others get PERMISSION_DENIED (exit 1).
)";

constexpr char kElectionsHelp[] = R"(Inspects and steers elections, cluster-wide.

  list             every election: candidates, primary, term
  info NAME        the candidates of NAME in order: the primary first, then
                   the secondaries in the order they take over
  step-down NAME   forces the primary out; the next candidate becomes primary
                   (the old one rejoins at the back if it asked for rejoin)

--json prints one object: {"elections":[...]}, {"election":..,"candidates":
[...]} or {"election":..,"previous":{...}}.

Example:
  coordctl elections info discovery
)";

constexpr char kLocksHelp[] = R"(Inspects and releases locks, cluster-wide.

  list           every held lock: holder, fencing token, waiters
  info NAME      the holder of NAME and its blocking waiters in FIFO order
  release NAME   force-releases NAME: its holder gets LOST (a `coordctl lock`
                 holding it stops its CMD and exits 76)

--json prints one object: {"locks":[...]}, {"name":..,"held":..,..} or
{"name":..,"previous":{...},"fencing_token":..}.

Example:
  coordctl locks release nightly-report
)";

constexpr char kMembersHelp[] = R"(Lists every coordd daemon of the cluster: node id, version, when it joined,
and its attributes. --json prints {"members":[...]}.
)";

constexpr char kStatusHelp[] = R"(Shows this daemon: node id, version, backend, link to the coordinator,
coordinator session and timeout, server, uptime, counts of sessions, locks,
waiters and candidacies, and whether it is ready.

Exit codes: 0 coordd is ready (healthy), 1 it is not ready or unreachable,
2 bad usage. Fit for a health check:
  coordctl status >/dev/null || echo unhealthy
)";

std::string linkText(v1::LinkState link) {
  absl::string_view name = v1::LinkState_Name(link);
  absl::ConsumePrefix(&name, "LINK_STATE_");
  return absl::AsciiStrToLower(name);
}

nlohmann::json optionalOwnerJson(bool present, const v1::OwnerRecord& record) {
  return present ? ownerJson(toOwner(record)) : nlohmann::json(nullptr);
}

nlohmann::json candidateJson(const v1::Candidate& candidate) {
  return {{"owner", ownerJson(toOwner(candidate.owner()))}, {"value", candidate.value()}, {"term", candidate.term()}};
}

// Checks "SUB [NAME]" against the subcommands that need a NAME or not.
std::optional<int> checkSubcommand(const Invocation& invocation, std::initializer_list<absl::string_view> with_name,
                                   absl::string_view without_name) {
  const std::string& sub = invocation.args[0];
  const bool needs_name = std::find(with_name.begin(), with_name.end(), sub) != with_name.end();
  if (!needs_name && sub != without_name) return usageError(invocation, absl::StrCat("unknown subcommand '", sub, "'"));
  if (needs_name && invocation.args.size() != 2) return usageError(invocation, absl::StrCat(sub, " needs a NAME"));
  if (!needs_name && invocation.args.size() != 1) return usageError(invocation, absl::StrCat(sub, " takes no NAME"));
  return std::nullopt;
}

int runElections(const Invocation& invocation) {
  if (std::optional<int> bad = checkSubcommand(invocation, {"info", "step-down"}, "list")) return *bad;
  absl::StatusOr<std::unique_ptr<Client>> client = connect(invocation);
  if (!client.ok()) return fail("connect", client.status());
  Admin& admin = (*client)->admin();
  const std::string& sub = invocation.args[0];

  if (sub == "list") {
    absl::StatusOr<v1::ListElectionsResponse> list = admin.listElections();
    if (!list.ok()) return fail("elections list", list.status());
    nlohmann::json elections = nlohmann::json::array();
    Table table({"ELECTION", "CANDIDATES", "PRIMARY", "TERM"});
    for (const v1::ElectionSummary& e : list->elections()) {
      elections.push_back({{"election", e.election()},
                           {"candidates", e.candidates()},
                           {"primary", optionalOwnerJson(e.has_primary(), e.primary())},
                           {"term", e.term()}});
      table.add({e.election(), absl::StrCat(e.candidates()), e.has_primary() ? ownerText(toOwner(e.primary())) : "-",
                 absl::StrCat(e.term())});
    }
    invocation.json ? printJson({{"elections", elections}}) : table.print();
    return kExitOk;
  }

  const std::string& name = invocation.args[1];
  if (sub == "info") {
    absl::StatusOr<v1::ElectionInfoResponse> info = admin.electionInfo(name);
    if (!info.ok()) return fail(absl::StrCat("elections info ", name), info.status());
    nlohmann::json candidates = nlohmann::json::array();
    Table table({"#", "ROLE", "OWNER", "SESSION", "NODE", "TERM", "VALUE"});
    int position = 0;
    for (const v1::Candidate& candidate : info->candidates()) {
      const Owner owner = toOwner(candidate.owner());
      const char* role = position == 0 ? "primary" : "secondary";
      candidates.push_back(candidateJson(candidate));
      candidates.back()["role"] = role;
      table.add({absl::StrCat(++position), role, owner.owner, owner.session_id, owner.node_id,
                 absl::StrCat(candidate.term()), valueText(candidate.value())});
    }
    if (invocation.json) {
      printJson({{"election", name}, {"candidates", candidates}});
    } else if (info->candidates().empty()) {
      printLine(absl::StrCat(name, ": no candidates"));
    } else {
      table.print();
    }
    return kExitOk;
  }

  absl::StatusOr<v1::StepDownResponse> stepped = admin.stepDown(name);
  if (!stepped.ok()) return fail(absl::StrCat("elections step-down ", name), stepped.status());
  if (invocation.json) {
    printJson({{"election", name}, {"previous", candidateJson(stepped->previous())}});
  } else {
    printLine(absl::StrCat(name, ": stepped down ", ownerText(toOwner(stepped->previous().owner())), ", term ",
                           stepped->previous().term()));
  }
  return kExitOk;
}

int runLocks(const Invocation& invocation) {
  if (std::optional<int> bad = checkSubcommand(invocation, {"info", "release"}, "list")) return *bad;
  absl::StatusOr<std::unique_ptr<Client>> client = connect(invocation);
  if (!client.ok()) return fail("connect", client.status());
  Admin& admin = (*client)->admin();
  const std::string& sub = invocation.args[0];

  if (sub == "list") {
    absl::StatusOr<v1::ListLocksResponse> list = admin.listLocks();
    if (!list.ok()) return fail("locks list", list.status());
    nlohmann::json locks = nlohmann::json::array();
    Table table({"LOCK", "HOLDER", "SESSION", "NODE", "TOKEN", "WAITERS"});
    for (const v1::LockSummary& lock : list->locks()) {
      const Owner holder = toOwner(lock.holder());
      locks.push_back({{"name", lock.name()},
                       {"holder", ownerJson(holder)},
                       {"fencing_token", lock.fencing_token()},
                       {"waiters", lock.waiters()}});
      table.add({lock.name(), holder.owner, holder.session_id, holder.node_id, absl::StrCat(lock.fencing_token()),
                 absl::StrCat(lock.waiters())});
    }
    invocation.json ? printJson({{"locks", locks}}) : table.print();
    return kExitOk;
  }

  const std::string& name = invocation.args[1];
  if (sub == "info") {
    absl::StatusOr<v1::LockInfoResponse> info = admin.lockInfo(name);
    if (!info.ok()) return fail(absl::StrCat("locks info ", name), info.status());
    nlohmann::json waiters = nlohmann::json::array();
    for (const v1::OwnerRecord& waiter : info->waiters()) waiters.push_back(ownerJson(toOwner(waiter)));
    if (invocation.json) {
      printJson({{"name", name},
                 {"held", info->held()},
                 {"holder", optionalOwnerJson(info->held(), info->holder())},
                 {"fencing_token", info->fencing_token()},
                 {"waiters", waiters}});
      return kExitOk;
    }
    printLine(info->held() ? absl::StrCat(name, ": held by ", ownerText(toOwner(info->holder())), ", token ",
                                          info->fencing_token())
                           : absl::StrCat(name, ": not held"));
    int position = 0;
    for (const v1::OwnerRecord& waiter : info->waiters()) {
      printLine(absl::StrCat("  waiter ", ++position, ": ", ownerText(toOwner(waiter))));
    }
    return kExitOk;
  }

  absl::StatusOr<v1::ForceReleaseResponse> released = admin.forceRelease(name);
  if (!released.ok()) return fail(absl::StrCat("locks release ", name), released.status());
  if (invocation.json) {
    printJson({{"name", name},
               {"previous", ownerJson(toOwner(released->previous()))},
               {"fencing_token", released->fencing_token()}});
  } else {
    printLine(absl::StrCat(name, ": released; it was held by ", ownerText(toOwner(released->previous())), ", token ",
                           released->fencing_token()));
  }
  return kExitOk;
}

int runMembers(const Invocation& invocation) {
  absl::StatusOr<std::unique_ptr<Client>> client = connect(invocation);
  if (!client.ok()) return fail("connect", client.status());
  absl::StatusOr<v1::ListMembersResponse> list = (*client)->admin().listMembers();
  if (!list.ok()) return fail("members", list.status());
  nlohmann::json members = nlohmann::json::array();
  Table table({"NODE", "VERSION", "SINCE", "ATTRIBUTES"});
  for (const v1::Member& member : list->members()) {
    const std::map<std::string, std::string> attributes(member.attributes().begin(), member.attributes().end());
    members.push_back({{"node_id", member.node_id()},
                       {"version", member.version()},
                       {"since_ms", member.since_ms()},
                       {"since", timeText(member.since_ms())},
                       {"attributes", attributes}});
    table.add({member.node_id(), member.version(), timeText(member.since_ms()), attributesText(attributes)});
  }
  invocation.json ? printJson({{"members", members}}) : table.print();
  return kExitOk;
}

int runStatus(const Invocation& invocation) {
  absl::StatusOr<std::unique_ptr<Client>> client = connect(invocation);
  if (!client.ok()) return fail("connect", client.status());
  absl::StatusOr<v1::DaemonStatusResponse> status = (*client)->admin().status();
  if (!status.ok()) return fail("status", status.status());
  const v1::DaemonStatusResponse& s = *status;
  if (invocation.json) {
    printJson({{"address", (*client)->address()},
               {"node_id", s.node_id()},
               {"version", s.version()},
               {"backend", s.backend()},
               {"link", linkText(s.link())},
               {"coordinator_session", s.coordinator_session()},
               {"watch_session", s.watch_session()},
               {"session_timeout_ms", s.session_timeout_ms()},
               {"server", s.server()},
               {"uptime_ms", s.uptime_ms()},
               {"sessions", s.sessions()},
               {"locks_held", s.locks_held()},
               {"lock_waiters", s.lock_waiters()},
               {"candidacies", s.candidacies()},
               {"ready", s.ready()}});
  } else {
    const auto dash = [](const std::string& text) { return text.empty() ? std::string("-") : text; };
    Table table({"address:", (*client)->address()});
    table.add({"node:", s.node_id()});
    table.add({"version:", s.version()});
    table.add({"backend:", s.backend()});
    table.add({"link:", linkText(s.link())});
    table.add({"coordinator session:", dash(s.coordinator_session())});
    table.add({"watch session:", dash(s.watch_session())});
    table.add({"session timeout:", s.session_timeout_ms() > 0 ? durationText(s.session_timeout_ms()) : "-"});
    table.add({"server:", dash(s.server())});
    table.add({"uptime:", durationText(s.uptime_ms())});
    table.add({"sessions:", absl::StrCat(s.sessions())});
    table.add({"locks held:", absl::StrCat(s.locks_held())});
    table.add({"lock waiters:", absl::StrCat(s.lock_waiters())});
    table.add({"candidacies:", absl::StrCat(s.candidacies())});
    table.add({"ready:", s.ready() ? "yes" : "no"});
    table.print();
  }
  return s.ready() ? kExitOk : kExitError;
}

}  // namespace

Command electionsCommand() {
  return Command{"elections",
                 "admin: list elections, show candidates, force a step-down",
                 "elections list | info NAME | step-down NAME",
                 absl::StrCat(kElectionsHelp, "\n", kAdminNote),
                 {},
                 1,
                 2,
                 false,
                 runElections};
}

Command locksCommand() {
  return Command{"locks",
                 "admin: list locks, show holder and waiters, force a release",
                 "locks list | info NAME | release NAME",
                 absl::StrCat(kLocksHelp, "\n", kAdminNote),
                 {},
                 1,
                 2,
                 false,
                 runLocks};
}

Command membersCommand() {
  return Command{"members", "admin: list the daemons of the cluster",
                 "members", absl::StrCat(kMembersHelp, "\n", kAdminNote),
                 {},        0,
                 0,         false,
                 runMembers};
}

Command statusCommand() {
  return Command{
      "status", "this daemon's health: link, session, counts; exit 0 if ready", "status", kStatusHelp, {}, 0, 0, false,
      runStatus};
}

}  // namespace coordd::ctl
