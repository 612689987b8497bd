#include "supervise.h"

#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cli.h"
#include "output.h"

namespace coordd::ctl {
namespace {

constexpr size_t kMaxAttributeValue = 4000;  // the daemon takes up to 4 KiB

sigset_t supervisedSignals() {
  sigset_t set;
  sigemptyset(&set);
  for (int signal : {SIGINT, SIGTERM, SIGHUP, SIGCHLD}) sigaddset(&set, signal);
  return set;
}

absl::Status errnoStatus(int error, absl::string_view what) { return absl::ErrnoToStatus(error, what); }

std::string hostName() {
  char host[256] = {};
  if (::gethostname(host, sizeof(host) - 1) != 0) return "unknown-host";
  return host;
}

// At most `limit` bytes, not splitting a UTF-8 sequence.
std::string truncateUtf8(std::string text, size_t limit) {
  if (text.size() <= limit) return text;
  size_t cut = limit;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  text.resize(cut);
  return text;
}

}  // namespace

// --- EventWaiter -------------------------------------------------------------

absl::StatusOr<std::unique_ptr<EventWaiter>> EventWaiter::create(int watched) {
  const sigset_t signals = supervisedSignals();
  if (int error = ::pthread_sigmask(SIG_BLOCK, &signals, nullptr); error != 0) {
    return errnoStatus(error, "pthread_sigmask");
  }
  const int signal_fd = ::signalfd(-1, &signals, SFD_NONBLOCK | SFD_CLOEXEC);
  if (signal_fd < 0) return errnoStatus(errno, "signalfd");
  const int event_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (event_fd < 0) {
    const int error = errno;
    ::close(signal_fd);
    return errnoStatus(error, "eventfd");
  }
  std::unique_ptr<EventWaiter> waiter(new EventWaiter(signal_fd, event_fd, watched));
  if (waiter->timer_.fd() < 0) return errnoStatus(errno, "timerfd_create(CLOCK_BOOTTIME)");
  return waiter;
}

EventWaiter::~EventWaiter() {
  ::close(signal_fd_);
  ::close(event_fd_);
}

void EventWaiter::notify() {
  const uint64_t one = 1;
  // Cannot fail short of a counter overflow, which still leaves it readable.
  [[maybe_unused]] ssize_t written = ::write(event_fd_, &one, sizeof(one));
}

EventWaiter::Event EventWaiter::wait(std::optional<Clock::time_point> deadline) {
  timer_.arm(deadline);
  for (;;) {
    if (deadline && Clock::now() >= *deadline) return Event{Event::Kind::kTimeout};
    pollfd fds[4] = {{signal_fd_, POLLIN, 0}, {event_fd_, POLLIN, 0}, {watched_, POLLIN, 0}, {timer_.fd(), POLLIN, 0}};
    if (::poll(fds, 4, -1) <= 0) continue;  // EINTR: re-check the deadline
    if (fds[3].revents & POLLIN) timer_.clear();
    // Signals and notifications first: a watched file that stays readable
    // (a closed socket) must not hide them.
    if (fds[0].revents & POLLIN) {
      signalfd_siginfo info;
      if (::read(signal_fd_, &info, sizeof(info)) == sizeof(info)) {
        const int signal = static_cast<int>(info.ssi_signo);
        return signal == SIGCHLD ? Event{Event::Kind::kChild} : Event{Event::Kind::kSignal, signal};
      }
    }
    if (fds[1].revents & POLLIN) {
      uint64_t count = 0;
      if (::read(event_fd_, &count, sizeof(count)) == sizeof(count)) return Event{Event::Kind::kNotified};
    }
    if (fds[2].revents & (POLLIN | POLLHUP | POLLERR)) return Event{Event::Kind::kChild};
  }
}

// --- Stopping the tree ----------------------------------------------------------

void reportKeeper(const std::vector<Keeper::Report>& reports, bool json, Keeper& keeper) {
  for (const Keeper::Report& report : reports) {
    if (report.kind == Keeper::Report::Kind::kSignalled && report.text.rfind("coordctl asked", 0) != 0) {
      ctl::report(json, {{"event", "watchdog_signal"}, {"signal", signalName(report.code)}, {"why", report.text}},
                  absl::StrCat("watchdog: ", signalName(report.code), " to CMD's processes: ", report.text));
    } else if (report.kind == Keeper::Report::Kind::kDied) {
      ctl::report(json, {{"event", "watchdog_died"}, {"pid", keeper.pid()}},
                  absl::StrCat("the watchdog (pid ", keeper.pid(), ") died: what was left of CMD is killed"));
    }
  }
}

Stopped stopTree(Keeper& keeper, EventWaiter& waiter, bool json, bool now, int cause_signal,
                 const std::function<bool()>& hold_gone) {
  Stopped result{0, cause_signal};
  keeper.stop(now);
  bool killing = now;
  const auto killNow = [&] {
    if (killing) return;
    keeper.stop(true);
    killing = true;
  };
  while (keeper.running()) {
    if (hold_gone && hold_gone()) killNow();  // it may be someone else's by now
    const EventWaiter::Event event = waiter.wait();
    if (event.kind == EventWaiter::Event::Kind::kSignal) {
      if (result.interrupted_by != 0) killNow();  // the second time, no more patience
      result.interrupted_by = event.signal;
    }
    reportKeeper(keeper.read(), json, keeper);
  }
  result.exit_code = keeper.exitCode().value_or(kExitError);
  return result;
}

absl::StatusOr<absl::Duration> sessionTtl(const Invocation& invocation) {
  absl::StatusOr<absl::Duration> ttl = invocation.duration("ttl", absl::Seconds(10));
  if (ttl.ok() && (*ttl < absl::Seconds(1) || *ttl > absl::Seconds(300))) {
    return absl::InvalidArgumentError(absl::StrCat("--ttl ", absl::FormatDuration(*ttl), ": must be from 1s to 300s"));
  }
  return ttl;
}

std::string signalName(int signal) {
  const char* abbreviation = ::sigabbrev_np(signal);
  return abbreviation != nullptr ? absl::StrCat("SIG", abbreviation) : absl::StrCat("signal ", signal);
}

absl::StatusOr<std::unique_ptr<Session>> openSupervisorSession(Client& client, absl::string_view kind,
                                                               const std::vector<std::string>& argv, absl::Duration ttl,
                                                               EventWaiter& waiter, Keeper& keeper) {
  const std::string host = hostName();
  SessionOptions options;
  options.owner = absl::StrCat("coordctl-", kind, "@", host, ":", ::getpid());
  options.attributes = {{"host", host},
                        {"pid", absl::StrCat(::getpid())},
                        {"command", truncateUtf8(absl::StrJoin(argv, " "), kMaxAttributeValue)}};
  options.ttl = ttl;
  options.guard_pids = {keeper.pid()};
  options.on_lease = [&keeper](const Lease& lease) { keeper.renew(lease); };
  options.on_ended = [&waiter](absl::string_view) { waiter.notify(); };
  return client.openSession(std::move(options));
}

}  // namespace coordd::ctl
