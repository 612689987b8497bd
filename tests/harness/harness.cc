#include "harness.h"

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

extern char** environ;

namespace coordd::e2e {

TempDir::TempDir() {
  std::string templ = (std::filesystem::temp_directory_path() / "coordd-e2e-XXXXXX").string();
  if (mkdtemp(templ.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = templ;
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

Process::Process(std::vector<std::string> argv, std::map<std::string, std::string> env,
                 const std::string& output_prefix)
    : out_path_(output_prefix + ".out"), err_path_(output_prefix + ".err") {
  std::vector<std::string> environment;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string entry = *e;
    if (env.count(entry.substr(0, entry.find('='))) == 0) environment.push_back(entry);
  }
  for (const auto& [k, v] : env) environment.push_back(k + "=" + v);
  std::vector<char*> c_argv;
  for (auto& a : argv) c_argv.push_back(a.data());
  c_argv.push_back(nullptr);
  std::vector<char*> c_env;
  for (auto& e : environment) c_env.push_back(e.data());
  c_env.push_back(nullptr);

  std::fflush(nullptr);  // or the child would write our buffered output again
  pid_ = fork();
  if (pid_ < 0) throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    ::setpgid(0, 0);
    // A test that crashes leaves no server behind. (The parent may have died
    // before this line: then exit at once.)
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() == 1) _exit(126);
    int out = ::open(out_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int err = ::open(err_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0 || err < 0 || ::dup2(out, 1) < 0 || ::dup2(err, 2) < 0) _exit(125);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    execve(c_argv[0], c_argv.data(), c_env.data());
    _exit(127);
  }
}

Process::~Process() {
  if (running()) {
    signalGroup(SIGKILL);
    wait(5s);
  }
}

void Process::signal(int signo) const { ::kill(pid_, signo); }

void Process::signalGroup(int signo) const { ::kill(-pid_, signo); }

bool Process::running() { return !wait(0ms).has_value(); }

std::optional<int> Process::wait(std::chrono::milliseconds timeout) {
  if (exit_code_) return exit_code_;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    int status = 0;
    pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      return exit_code_;
    }
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(1ms);
  }
}

std::string Process::out() const { return readFile(out_path_); }
std::string Process::err() const { return readFile(err_path_); }

Daemon::Daemon(std::vector<std::string> extra_args, Wait wait, std::vector<std::string> launcher)
    : address_("unix:" + dir_.file("coordd.sock")), argv_(std::move(launcher)) {
  argv_.insert(argv_.end(), {COORDD_BIN, "--listen", address_});
  argv_.insert(argv_.end(), extra_args.begin(), extra_args.end());
  start(wait);
}

void Daemon::kill() {
  process_->signal(SIGKILL);
  process_->wait(10s);
}

void Daemon::restart(Wait wait) {
  if (process_->running()) kill();
  start(wait);
}

void Daemon::start(Wait wait) {
  // Each run has its own output files; log() joins them.
  const std::string output = runs_ == 0 ? "coordd" : absl::StrCat("coordd-", runs_);
  ++runs_;
  process_ = std::make_unique<Process>(argv_, std::map<std::string, std::string>{}, dir_.file(output));
  const std::string socket = dir_.file("coordd.sock");
  bool up = eventually(
      [&] {
        return !process_->running() ||
               (std::filesystem::exists(socket) && (wait == Wait::kListening || coordctl({"status"}, 5s).code == 0));
      },
      10s);
  if (!up || !process_->running()) {
    throw std::runtime_error("coordd did not become ready:\n" + log());
  }
}

Daemon::~Daemon() {
  if (process_->running()) {
    process_->signal(SIGTERM);
    process_->wait(15s);
  }
}

std::string Daemon::log() const {
  std::string log;
  for (int run = 0; run < runs_; ++run) {
    log += readFile(dir_.file(run == 0 ? "coordd.err" : absl::StrCat("coordd-", run, ".err")));
  }
  return log;
}

std::unique_ptr<Process> Daemon::startCoordctl(std::vector<std::string> args) {
  args.insert(args.begin(), COORDCTL_BIN);
  return std::make_unique<Process>(args, std::map<std::string, std::string>{{"COORDD_ADDRESS", address_}},
                                   dir_.file(absl::StrCat("coordctl-", next_output_++)));
}

Daemon::Result Daemon::coordctl(std::vector<std::string> args, std::chrono::milliseconds timeout) {
  auto process = startCoordctl(std::move(args));
  auto code = process->wait(timeout);
  return Result{code.value_or(-1), process->out(), process->err()};
}

bool eventually(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(1ms);
  }
  return condition();
}

sockaddr_un unixAddress(const std::string& path) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.size() >= sizeof(address.sun_path)) throw std::runtime_error("socket path too long: " + path);
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
  return address;
}

std::string readFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

std::vector<std::string> readLines(const std::string& path) {
  return absl::StrSplit(readFile(path), '\n', absl::SkipEmpty());
}

std::string selfPath() {
  char self[4096];
  ssize_t n = ::readlink("/proc/self/exe", self, sizeof(self) - 1);
  return std::string(self, n > 0 ? static_cast<size_t>(n) : 0);
}

pid_t parentPid(pid_t pid) {
  // "PID (COMM) STATE PPID ...": COMM may hold anything, so from the last ')'.
  const std::string stat = readFile("/proc/" + std::to_string(pid) + "/stat");
  const size_t close = stat.rfind(')');
  if (close == std::string::npos) return 0;
  std::vector<std::string> fields = absl::StrSplit(stat.substr(close + 2), ' ');
  int ppid = 0;
  return fields.size() > 1 && absl::SimpleAtoi(fields[1], &ppid) ? ppid : 0;
}

int64_t rssKiB(pid_t pid) {
  for (const auto& line : readLines("/proc/" + std::to_string(pid) + "/status")) {
    int64_t kib = 0;
    // "VmRSS:     1234 kB"
    if (line.rfind("VmRSS:", 0) == 0 &&
        absl::SimpleAtoi(absl::StripAsciiWhitespace(absl::StripSuffix(line.substr(6), "kB")), &kib)) {
      return kib;
    }
  }
  return -1;
}

int64_t monotonicMicros() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
}

}  // namespace coordd::e2e
