#include "keeper.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
// glibc 2.36 declares these without C linkage (fixed in 2.37).
extern "C" {
#include <sys/pidfd.h>
}
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "boot_timer.h"
#include "cli.h"

extern char** environ;

namespace coordd::ctl {
namespace {

using Clock = BootClock;

// How often SIGKILL is repeated while the tree is not gone (a process may
// fork between a scan and the signal).
constexpr std::chrono::milliseconds kKillRepeat{10};

// --- Messages on the socket (SOCK_SEQPACKET: one send, one message) -----------

struct CommandMessage {
  enum Kind : int32_t { kLease = 1, kRun, kStop, kKill };
  int32_t kind = kLease;
  int64_t valid_until = 0;  // BootClock ticks (kLease, kRun)
  int64_t exclusive_until = 0;
  // kRun: followed by "KEY=VALUE\0" entries to add to the environment.
};

struct ReportMessage {
  int32_t kind = 0;  // Keeper::Report::Kind
  int32_t pid = 0;
  int32_t code = 0;
  int32_t for_lease = 0;  // kSignalled: because of the lease, not asked to
  char text[240] = {};
};

// The most --grace can be: keeps the deadline arithmetic far from overflow.
constexpr std::chrono::hours kMaxGrace{24};

constexpr size_t kMaxMessage = 64 * 1024;

int64_t ticks(Clock::time_point t) { return t.time_since_epoch().count(); }
Clock::time_point fromTicks(int64_t ticks) { return Clock::time_point(Clock::duration(ticks)); }

// --- The process tree --------------------------------------------------------

// The parent of `pid` from /proc/PID/stat, or 0.
pid_t parentOf(pid_t pid) {
  char path[64];
  std::snprintf(path, sizeof(path), "/proc/%d/stat", pid);
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  char buffer[512];
  const ssize_t n = ::read(fd, buffer, sizeof(buffer) - 1);
  ::close(fd);
  if (n <= 0) return 0;
  buffer[n] = '\0';
  // "PID (COMM) STATE PPID ...": COMM may hold anything, so from the last ')'.
  const char* close = std::strrchr(buffer, ')');
  int ppid = 0;
  if (close == nullptr || std::sscanf(close + 1, " %*c %d", &ppid) != 1) return 0;
  return ppid;
}

// Every live descendant of `root`, from one scan of /proc.
std::set<pid_t> descendantsOf(pid_t root) {
  std::vector<std::pair<pid_t, pid_t>> parents;  // pid, ppid
  if (DIR* proc = ::opendir("/proc")) {
    while (dirent* entry = ::readdir(proc)) {
      int pid = 0;
      if (!absl::SimpleAtoi(entry->d_name, &pid) || pid <= 0) continue;
      if (pid_t ppid = parentOf(pid); ppid > 0) parents.emplace_back(pid, ppid);
    }
    ::closedir(proc);
  }
  std::set<pid_t> found;
  for (bool grew = true; grew;) {
    grew = false;
    for (const auto& [pid, ppid] : parents) {
      if ((ppid == root || found.count(ppid) != 0) && found.insert(pid).second) grew = true;
    }
  }
  return found;
}

// Sends `signal` to every descendant of this process; how many got it. Each
// through a pidfd whose process is checked to be a descendant still, so a
// recycled pid is never signalled.
int signalDescendants(int signal) {
  const pid_t self = ::getpid();
  const std::set<pid_t> tree = descendantsOf(self);
  int sent = 0;
  for (pid_t pid : tree) {
    const int pidfd = ::pidfd_open(pid, 0);
    if (pidfd < 0) continue;  // gone meanwhile
    const pid_t parent = parentOf(pid);
    if ((parent == self || tree.count(parent) != 0) && ::pidfd_send_signal(pidfd, signal, nullptr, 0) == 0) ++sent;
    ::close(pidfd);
  }
  return sent;
}

// --- Starting CMD --------------------------------------------------------------

// The file execve() should run for `name`, searched in $PATH like execvp(3).
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

// environ with `extra` ("KEY=VALUE") added, replacing variables of the same name.
std::vector<std::string> childEnvironment(const std::vector<std::string>& extra) {
  const auto keyOf = [](absl::string_view variable) { return variable.substr(0, variable.find('=')); };
  std::vector<std::string> env;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    const absl::string_view key = keyOf(*entry);
    if (std::none_of(extra.begin(), extra.end(), [&](const std::string& e) { return keyOf(e) == key; })) {
      env.emplace_back(*entry);
    }
  }
  env.insert(env.end(), extra.begin(), extra.end());
  return env;
}

std::vector<char*> pointers(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (std::string& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

// What the keeper ignores; CMD gets them back at their defaults.
constexpr int kIgnored[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGTSTP, SIGTTIN, SIGTTOU, SIGPIPE};

// --- The keeper process ----------------------------------------------------------

class KeeperProcess {
 public:
  KeeperProcess(int socket, std::vector<std::string> argv, absl::Duration grace)
      : socket_(socket),
        argv_(std::move(argv)),
        grace_(std::min<Clock::duration>(absl::ToChronoNanoseconds(grace), kMaxGrace)) {}

  [[noreturn]] void run() {
    ::setpgid(0, 0);
    ::prctl(PR_SET_CHILD_SUBREAPER, 1);
    struct sigaction ignore = {};
    ignore.sa_handler = SIG_IGN;
    for (int signal : kIgnored) ::sigaction(signal, &ignore, nullptr);
    // An ignored SIGCHLD (inherited) would make exited children vanish unreaped.
    struct sigaction default_action = {};
    default_action.sa_handler = SIG_DFL;
    ::sigaction(SIGCHLD, &default_action, nullptr);
    sigset_t child;
    sigemptyset(&child);
    sigaddset(&child, SIGCHLD);
    ::sigprocmask(SIG_SETMASK, &child, nullptr);
    signal_fd_ = ::signalfd(-1, &child, SFD_NONBLOCK | SFD_CLOEXEC);
    if (signal_fd_ < 0 || timer_.fd() < 0) ::_exit(kExitError);

    for (;;) {
      reap();
      if (coordctl_gone_ && !running_) ::_exit(kExitOk);
      const Clock::time_point now = Clock::now();
      std::optional<Clock::time_point> wake;
      if (running_) {
        if (!stopping_ && now >= valid_until_) beginStop(now, "the lease ran out", false, true);
        if (stopping_ && now >= killAt()) {
          if (!killing_) {
            killing_ = true;
            report(Keeper::Report::Kind::kSignalled, 0, SIGKILL,
                   kill_at_ > marginEnd() ? "the margin after the lease is ending" : stop_reason_, for_lease_);
          }
          signalDescendants(SIGKILL);
          wake = now + kKillRepeat;
        } else {
          wake = stopping_ ? killAt() : valid_until_;
        }
      }
      timer_.arm(wake);
      pollfd fds[3] = {{timer_.fd(), POLLIN, 0}, {signal_fd_, POLLIN, 0}, {socket_, POLLIN, 0}};
      const nfds_t count = coordctl_gone_ ? 2 : 3;
      if (::poll(fds, count, -1) < 0 && errno != EINTR) ::_exit(kExitError);
      if (fds[0].revents & POLLIN) timer_.clear();
      if (fds[1].revents & POLLIN) {
        signalfd_siginfo info;
        while (::read(signal_fd_, &info, sizeof(info)) == sizeof(info)) {
        }
      }
      if (count > 2 && (fds[2].revents & (POLLIN | POLLHUP | POLLERR))) receive();
    }
  }

 private:
  // The margin's end less the lead, but never before the lease's end.
  Clock::time_point marginEnd() const { return std::max(valid_until_, exclusive_until_ - kKillLead); }
  Clock::time_point killAt() const { return std::min(kill_at_, marginEnd()); }

  // SIGTERM now and SIGKILL after the grace, or with `at_once` SIGKILL at
  // the next turn of the loop (no SIGTERM: the hold may be gone already).
  // `for_lease`: the keeper acts on its own, the lease having run out.
  void beginStop(Clock::time_point now, const std::string& why, bool at_once = false, bool for_lease = false) {
    kill_at_ = std::min(kill_at_, at_once ? now : now + grace_);
    if (stopping_) return;
    stopping_ = true;
    stop_reason_ = why;
    for_lease_ = for_lease;
    if (at_once) return;
    report(Keeper::Report::Kind::kSignalled, 0, SIGTERM, why, for_lease);
    signalDescendants(SIGTERM);
  }

  void receive() {
    std::vector<char> buffer(kMaxMessage);
    const ssize_t n = ::recv(socket_, buffer.data(), buffer.size(), 0);
    if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) {
      coordctl_gone_ = true;
      if (running_) beginStop(Clock::now(), "coordctl is gone");
      return;
    }
    if (n < static_cast<ssize_t>(sizeof(CommandMessage))) return;
    CommandMessage command;
    std::memcpy(&command, buffer.data(), sizeof(command));
    switch (command.kind) {
      case CommandMessage::kLease:
        renew(command);
        break;
      case CommandMessage::kRun:
        // The lease of the session the new tree runs for, whatever came before.
        valid_until_ = fromTicks(command.valid_until);
        exclusive_until_ = fromTicks(command.exclusive_until);
        start(std::vector<std::string>(
            absl::StrSplit(absl::string_view(buffer.data() + sizeof(command), static_cast<size_t>(n) - sizeof(command)),
                           '\0', absl::SkipEmpty())));
        break;
      case CommandMessage::kStop:
        if (running_) beginStop(Clock::now(), "coordctl asked");
        break;
      case CommandMessage::kKill:
        if (running_) beginStop(Clock::now(), "coordctl asked for SIGKILL", true);
        break;
    }
  }

  void renew(const CommandMessage& command) {
    valid_until_ = std::max(valid_until_, fromTicks(command.valid_until));
    exclusive_until_ = std::max(exclusive_until_, fromTicks(command.exclusive_until));
  }

  void start(const std::vector<std::string>& extra_env) {
    if (running_) {
      report(Keeper::Report::Kind::kStartFailed, 0, kExitCannotExecute, "CMD is still running");
      return;
    }
    absl::StatusOr<std::string> path = resolveExecutable(argv_.at(0));
    if (!path.ok()) {
      report(Keeper::Report::Kind::kStartFailed, 0,
             absl::IsNotFound(path.status()) ? kExitNotFound : kExitCannotExecute,
             std::string(path.status().message()));
      return;
    }
    std::vector<std::string> args = argv_;
    std::vector<std::string> environment = childEnvironment(extra_env);
    std::vector<char*> arg_pointers = pointers(args);
    std::vector<char*> env_pointers = pointers(environment);
    int exec_error_pipe[2];
    if (::pipe2(exec_error_pipe, O_CLOEXEC) != 0) {
      report(Keeper::Report::Kind::kStartFailed, 0, kExitCannotExecute, absl::StrCat("pipe2: ", std::strerror(errno)));
      return;
    }
    const pid_t keeper = ::getpid();
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::setpgid(0, 0);
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != keeper) ::_exit(kExitError);  // the keeper died before prctl
      sigset_t none;
      sigemptyset(&none);
      ::sigprocmask(SIG_SETMASK, &none, nullptr);
      struct sigaction default_action = {};
      default_action.sa_handler = SIG_DFL;
      for (int signal : kIgnored) ::sigaction(signal, &default_action, nullptr);
      ::execve(path->c_str(), arg_pointers.data(), env_pointers.data());
      const int error = errno;
      [[maybe_unused]] ssize_t written = ::write(exec_error_pipe[1], &error, sizeof(error));
      ::_exit(kExitCannotExecute);
    }
    const int fork_error = errno;
    ::close(exec_error_pipe[1]);
    if (pid < 0) {
      ::close(exec_error_pipe[0]);
      report(Keeper::Report::Kind::kStartFailed, 0, kExitCannotExecute,
             absl::StrCat("fork: ", std::strerror(fork_error)));
      return;
    }
    ::setpgid(pid, pid);  // as the child does: whichever runs first, its group exists afterwards
    int exec_error = 0;
    ssize_t got;
    do {
      got = ::read(exec_error_pipe[0], &exec_error, sizeof(exec_error));
    } while (got < 0 && errno == EINTR);
    ::close(exec_error_pipe[0]);
    if (got == sizeof(exec_error)) {
      ::waitpid(pid, nullptr, 0);
      report(Keeper::Report::Kind::kStartFailed, 0, exec_error == ENOENT ? kExitNotFound : kExitCannotExecute,
             absl::StrCat("cannot execute ", *path, ": ", std::strerror(exec_error)));
      return;
    }
    cmd_pid_ = pid;
    running_ = true;
    stopping_ = killing_ = for_lease_ = false;
    kill_at_ = Clock::time_point::max();
    report(Keeper::Report::Kind::kStarted, pid, 0, "");
  }

  // Reaps every child that has exited; reports CMD's exit and the tree's end.
  void reap() {
    for (;;) {
      int status = 0;
      const pid_t pid = ::waitpid(-1, &status, WNOHANG);
      if (pid > 0) {
        if (pid == cmd_pid_) {
          cmd_pid_ = 0;
          const int code = WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
          report(Keeper::Report::Kind::kExited, pid, code, "");
        }
        continue;
      }
      // Children left after CMD exited (its orphans are ours): what CMD left
      // running must not outlive the hold.
      if (pid == 0 && running_ && cmd_pid_ == 0 && !stopping_) {
        beginStop(Clock::now(), "CMD exited; stopping the processes it left");
      }
      if (pid < 0 && errno == ECHILD && running_) {
        running_ = stopping_ = killing_ = false;
        report(Keeper::Report::Kind::kGone, 0, 0, "");
      }
      return;
    }
  }

  void report(Keeper::Report::Kind kind, int pid, int code, const std::string& text, bool for_lease = false) {
    if (coordctl_gone_) return;
    ReportMessage message;
    message.kind = static_cast<int32_t>(kind);
    message.pid = pid;
    message.code = code;
    message.for_lease = for_lease ? 1 : 0;
    std::strncpy(message.text, text.c_str(), sizeof(message.text) - 1);
    // A frozen coordctl reads it later; a full socket must not stop the keeper.
    [[maybe_unused]] ssize_t sent = ::send(socket_, &message, sizeof(message), MSG_DONTWAIT | MSG_NOSIGNAL);
  }

  const int socket_;
  const std::vector<std::string> argv_;
  const Clock::duration grace_;
  int signal_fd_ = -1;
  BootTimer timer_;  // the next deadline: the lease's end, the kill
  bool coordctl_gone_ = false;
  Clock::time_point valid_until_{};
  Clock::time_point exclusive_until_{};
  pid_t cmd_pid_ = 0;
  bool running_ = false;    // started, and not every process of it reaped yet
  bool stopping_ = false;   // SIGTERM sent (or SIGKILL due)
  bool killing_ = false;    // SIGKILL sent
  bool for_lease_ = false;  // stopping because the lease ran out
  Clock::time_point kill_at_ = Clock::time_point::max();
  std::string stop_reason_;
};

}  // namespace

// --- Keeper (coordctl's side) ------------------------------------------------

absl::StatusOr<std::unique_ptr<Keeper>> Keeper::spawn(std::vector<std::string> argv, absl::Duration grace) {
  int sockets[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sockets) != 0) {
    return absl::ErrnoToStatus(errno, "socketpair");
  }
  std::fflush(nullptr);  // or the keeper would write coordctl's buffered output again
  const pid_t pid = ::fork();
  if (pid < 0) {
    const int error = errno;
    ::close(sockets[0]);
    ::close(sockets[1]);
    return absl::ErrnoToStatus(error, "fork");
  }
  if (pid == 0) {
    ::close(sockets[0]);
    try {
      KeeperProcess(sockets[1], std::move(argv), grace).run();
    } catch (...) {
      // Never back into coordctl's code: that would be a second coordctl.
    }
    ::_exit(kExitError);
  }
  ::close(sockets[1]);
  // Should the keeper be killed, what CMD started is handed to coordctl.
  ::prctl(PR_SET_CHILD_SUBREAPER, 1);
  return std::unique_ptr<Keeper>(new Keeper(pid, sockets[0]));
}

Keeper::~Keeper() {
  ::close(fd_);
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
}

void Keeper::send(const void* message, size_t size, int flags) {
  std::lock_guard<std::mutex> lock(send_mu_);
  [[maybe_unused]] ssize_t sent = ::send(fd_, message, size, MSG_NOSIGNAL | flags);
}

void Keeper::renew(const Lease& lease) {
  CommandMessage command;
  command.kind = CommandMessage::kLease;
  command.valid_until = ticks(lease.valid_until);
  command.exclusive_until = ticks(lease.exclusive_until);
  // Never blocks the library's thread: a renewal the keeper cannot take now
  // only leaves it a shorter lease.
  send(&command, sizeof(command), MSG_DONTWAIT);
}

absl::StatusOr<pid_t> Keeper::run(const std::vector<std::pair<std::string, std::string>>& env, const Lease& lease) {
  CommandMessage command;
  command.kind = CommandMessage::kRun;
  command.valid_until = ticks(lease.valid_until);
  command.exclusive_until = ticks(lease.exclusive_until);
  std::string message(reinterpret_cast<const char*>(&command), sizeof(command));
  for (const auto& [key, value] : env) absl::StrAppend(&message, key, "=", value, std::string(1, '\0'));
  if (message.size() > kMaxMessage) return absl::InvalidArgumentError("CMD's environment is too large");
  exit_code_.reset();
  send(message.data(), message.size());
  std::optional<absl::StatusOr<pid_t>> answer;
  while (!answer) {
    pollfd fds{fd_, POLLIN, 0};
    if (::poll(&fds, 1, -1) < 0 && errno != EINTR) return absl::ErrnoToStatus(errno, "poll");
    for (Report& report : read()) {
      if (answer) {
        early_.push_back(std::move(report));  // came with the answer: the caller's to see
      } else if (report.kind == Report::Kind::kStarted) {
        answer = report.pid;
      } else if (report.kind == Report::Kind::kStartFailed) {
        answer =
            report.code == kExitNotFound ? absl::NotFoundError(report.text) : absl::PermissionDeniedError(report.text);
      } else if (report.kind == Report::Kind::kDied) {
        answer = absl::AbortedError("the watchdog process died");
        early_.push_back(std::move(report));
      } else {
        early_.push_back(std::move(report));  // before the answer, but the caller's to see too
      }
    }
  }
  return *answer;
}

void Keeper::stop(bool now) {
  CommandMessage command;
  command.kind = now ? CommandMessage::kKill : CommandMessage::kStop;
  send(&command, sizeof(command));
}

void Keeper::apply(const Report& report) {
  switch (report.kind) {
    case Report::Kind::kStarted:
      running_ = true;
      stopped_for_lease_ = false;
      break;
    case Report::Kind::kSignalled:
      if (report.for_lease) stopped_for_lease_ = true;
      break;
    case Report::Kind::kExited:
      exit_code_ = report.code;
      break;
    case Report::Kind::kGone:
      running_ = false;
      break;
    case Report::Kind::kDied:
      died_ = true;
      running_ = false;
      // What CMD started is coordctl's now (a subreaper): it must not live on.
      killAllDescendants();
      break;
    case Report::Kind::kStartFailed:
      break;
  }
}

std::vector<Keeper::Report> Keeper::read() {
  std::vector<Report> reports = std::move(early_);
  early_.clear();
  while (!died_) {
    ReportMessage message;
    const ssize_t n = ::recv(fd_, &message, sizeof(message), MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) break;
    Report report{Report::Kind::kDied, 0, 0, "", false};
    if (n == static_cast<ssize_t>(sizeof(message))) {
      message.text[sizeof(message.text) - 1] = '\0';
      report = Report{static_cast<Report::Kind>(message.kind), message.pid, message.code, message.text,
                      message.for_lease != 0};
    }
    apply(report);
    reports.push_back(std::move(report));
  }
  return reports;
}

int Keeper::exitCodeFor(const absl::Status& start_error) {
  if (absl::IsNotFound(start_error)) return kExitNotFound;
  if (absl::IsPermissionDenied(start_error)) return kExitCannotExecute;
  return kExitError;
}

void killAllDescendants() {
  for (;;) {
    signalDescendants(SIGKILL);
    int status = 0;
    while (::waitpid(-1, &status, WNOHANG) > 0) {
    }
    if (::waitpid(-1, &status, WNOHANG) < 0 && errno == ECHILD) return;
    ::usleep(static_cast<useconds_t>(std::chrono::microseconds(kKillRepeat).count()));
  }
}

}  // namespace coordd::ctl
