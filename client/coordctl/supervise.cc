#include "supervise.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "cli.h"

extern char** environ;

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

// The file execve() should run for `name`, searched in $PATH like execvp(3)
// but before fork(): the child may only make async-signal-safe calls.
absl::StatusOr<std::string> resolveExecutable(const std::string& name) {
  const auto usable = [](const std::string& path) {
    struct stat info;
    return ::stat(path.c_str(), &info) == 0 && S_ISREG(info.st_mode) && ::access(path.c_str(), X_OK) == 0;
  };
  if (name.find('/') != std::string::npos) {
    if (usable(name)) return name;
    if (::access(name.c_str(), F_OK) != 0) return absl::NotFoundError(absl::StrCat(name, ": no such file"));
    return absl::PermissionDeniedError(absl::StrCat(name, ": not an executable file"));
  }
  const char* path = std::getenv("PATH");
  for (absl::string_view dir : absl::StrSplit(path != nullptr && *path != '\0' ? path : "/usr/bin:/bin", ':')) {
    std::string candidate = absl::StrCat(dir.empty() ? "." : dir, "/", name);
    if (usable(candidate)) return candidate;
  }
  return absl::NotFoundError(absl::StrCat(name, ": command not found"));
}

// environ with `extra` added, replacing variables of the same name.
std::vector<std::string> childEnvironment(const std::vector<std::pair<std::string, std::string>>& extra) {
  std::vector<std::string> env;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    const absl::string_view variable = *entry;
    const absl::string_view key = variable.substr(0, variable.find('='));
    const bool replaced = std::any_of(extra.begin(), extra.end(), [&](const auto& pair) { return pair.first == key; });
    if (!replaced) env.emplace_back(variable);
  }
  for (const auto& [key, value] : extra) env.push_back(absl::StrCat(key, "=", value));
  return env;
}

std::vector<char*> pointers(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (std::string& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

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

absl::StatusOr<std::unique_ptr<EventWaiter>> EventWaiter::create() {
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
  return std::unique_ptr<EventWaiter>(new EventWaiter(signal_fd, event_fd));
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
  for (;;) {
    int timeout_ms = -1;
    if (deadline) {
      const auto left = *deadline - Clock::now();
      if (left <= Clock::duration::zero()) return Event{Event::Kind::kTimeout};
      // Rounded up, so that a wake-up is never early.
      timeout_ms = static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(left).count());
    }
    pollfd fds[2] = {{signal_fd_, POLLIN, 0}, {event_fd_, POLLIN, 0}};
    if (::poll(fds, 2, timeout_ms) <= 0) continue;  // EINTR or timeout: re-check the deadline
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
  }
}

// --- Child -------------------------------------------------------------------

absl::StatusOr<Child> Child::start(const std::vector<std::string>& argv,
                                   const std::vector<std::pair<std::string, std::string>>& env) {
  absl::StatusOr<std::string> path = resolveExecutable(argv.at(0));
  if (!path.ok()) return path.status();
  std::vector<std::string> args = argv;
  std::vector<std::string> environment = childEnvironment(env);
  std::vector<char*> arg_pointers = pointers(args);
  std::vector<char*> env_pointers = pointers(environment);

  int exec_error_pipe[2];
  if (::pipe2(exec_error_pipe, O_CLOEXEC) != 0) return errnoStatus(errno, "pipe2");
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid == 0) {
    // Only async-signal-safe calls from here on: other threads of coordctl
    // may have held locks at the fork.
    ::setpgid(0, 0);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(kExitError);  // coordctl died before prctl
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    struct sigaction default_action = {};
    default_action.sa_handler = SIG_DFL;
    ::sigaction(SIGPIPE, &default_action, nullptr);
    ::execve(path->c_str(), arg_pointers.data(), env_pointers.data());
    const int error = errno;
    [[maybe_unused]] ssize_t written = ::write(exec_error_pipe[1], &error, sizeof(error));
    ::_exit(kExitCannotExecute);
  }
  const int fork_error = errno;
  ::close(exec_error_pipe[1]);
  if (pid < 0) {
    ::close(exec_error_pipe[0]);
    return errnoStatus(fork_error, "fork");
  }
  ::setpgid(pid, pid);  // as the child does: whichever runs first, kill(-pid) works afterwards

  int exec_error = 0;
  ssize_t got;
  do {
    got = ::read(exec_error_pipe[0], &exec_error, sizeof(exec_error));
  } while (got < 0 && errno == EINTR);
  ::close(exec_error_pipe[0]);
  if (got == sizeof(exec_error)) {
    ::waitpid(pid, nullptr, 0);
    return errnoStatus(exec_error, absl::StrCat("cannot execute ", *path));
  }
  return Child(pid);
}

std::optional<int> Child::poll() {
  if (exit_code_) return exit_code_;
  int status = 0;
  const pid_t reaped = ::waitpid(pid_, &status, WNOHANG);
  if (reaped == pid_) {
    exit_code_ = WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
  } else if (reaped < 0 && errno == ECHILD) {
    exit_code_ = kExitError;  // reaped elsewhere; its status is unknown
  }
  return exit_code_;
}

Child::Stopped Child::stop(EventWaiter& waiter, absl::Duration grace, int cause_signal) {
  Stopped result{0, cause_signal};
  const bool terminated = !poll();
  if (terminated) ::kill(-pid_, SIGTERM);
  std::optional<Clock::time_point> kill_at = Clock::now() + absl::ToChronoNanoseconds(grace);
  for (;;) {
    std::optional<Clock::time_point> wake = kill_at;
    if (std::optional<int> code = poll()) {
      result.exit_code = *code;
      // Other members of its group that got the SIGTERM must end too. Their
      // exit is not reported to us: look again every 20 ms, and SIGKILL
      // whatever is left at the deadline.
      if (!terminated || !kill_at || ::kill(-pid_, 0) != 0) return result;
      wake = std::min(*kill_at, Clock::now() + std::chrono::milliseconds(20));
    }
    const EventWaiter::Event event = waiter.wait(wake);
    bool kill_now = event.kind == EventWaiter::Event::Kind::kTimeout && kill_at && Clock::now() >= *kill_at;
    if (event.kind == EventWaiter::Event::Kind::kSignal) {
      kill_now = result.interrupted_by != 0;  // the second time, no more patience
      result.interrupted_by = event.signal;
    }
    if (kill_now && kill_at) {
      ::kill(-pid_, SIGKILL);
      kill_at.reset();
    }
  }
}

int Child::exitCodeFor(const absl::Status& start_error) {
  return absl::IsNotFound(start_error) ? kExitNotFound : kExitCannotExecute;
}

std::string signalName(int signal) {
  const char* abbreviation = ::sigabbrev_np(signal);
  return abbreviation != nullptr ? absl::StrCat("SIG", abbreviation) : absl::StrCat("signal ", signal);
}

absl::StatusOr<std::unique_ptr<Session>> openSupervisorSession(Client& client, absl::string_view kind,
                                                               const std::vector<std::string>& argv,
                                                               EventWaiter& waiter) {
  const std::string host = hostName();
  SessionOptions options;
  options.owner = absl::StrCat("coordctl-", kind, "@", host, ":", ::getpid());
  options.attributes = {{"host", host},
                        {"pid", absl::StrCat(::getpid())},
                        {"command", truncateUtf8(absl::StrJoin(argv, " "), kMaxAttributeValue)}};
  options.on_ended = [&waiter](absl::string_view) { waiter.notify(); };
  return client.openSession(std::move(options));
}

}  // namespace coordd::ctl
