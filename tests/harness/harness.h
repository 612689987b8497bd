#pragma once

#include <sys/types.h>
#include <sys/un.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace coordd::e2e {

using namespace std::chrono_literals;

// A fresh temporary directory, removed with its contents at the end.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// A child process with its output in files.
class Process {
 public:
  // Starts argv[0] (a path) with `env` added to this process's environment.
  Process(std::vector<std::string> argv, std::map<std::string, std::string> env, const std::string& output_prefix);
  ~Process();  // SIGKILLs its process group if still running
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  void signal(int signo) const;
  // Every process started under it (it leads its own process group).
  void signalGroup(int signo) const;
  // The exit code (128+signal if killed), or nullopt if still running after
  // `timeout`.
  std::optional<int> wait(std::chrono::milliseconds timeout);
  bool running();
  std::string out() const;
  std::string err() const;

 private:
  pid_t pid_ = -1;
  std::optional<int> exit_code_;
  std::string out_path_;
  std::string err_path_;
};

// The real coordd on a Unix socket in its own temporary directory.
class Daemon {
 public:
  enum class Wait { kReady, kListening };
  // Starts coordd and waits until it is ready (coordctl status exits 0), or
  // only until it listens. `launcher` is put before the coordd command line
  // (e.g. "ip netns exec NAME"); it must exec coordd in the same process.
  explicit Daemon(std::vector<std::string> extra_args = {}, Wait wait = Wait::kReady,
                  std::vector<std::string> launcher = {});
  ~Daemon();

  // kill -9 of coordd.
  void kill();
  // Starts coordd again, on the same socket and arguments, and waits as the
  // constructor did.
  void restart(Wait wait = Wait::kReady);

  const std::string& address() const { return address_; }
  Process& process() { return *process_; }
  // Runs coordctl against this daemon and waits for it.
  struct Result {
    int code;
    std::string out;
    std::string err;
  };
  Result coordctl(std::vector<std::string> args, std::chrono::milliseconds timeout = 10s);
  // Starts coordctl against this daemon in the background.
  std::unique_ptr<Process> startCoordctl(std::vector<std::string> args);
  // What coordd logged, over every run.
  std::string log() const;
  const TempDir& dir() const { return dir_; }

 private:
  void start(Wait wait);

  TempDir dir_;
  std::string address_;
  std::vector<std::string> argv_;
  int runs_ = 0;
  std::unique_ptr<Process> process_;
  int next_output_ = 0;
};

// Sets `done` and joins `thread` when it goes out of scope, however the scope
// ends (a failed REQUIRE included), so that no test leaves a thread running.
class StopAndJoin {
 public:
  StopAndJoin(std::atomic<bool>& done, std::thread& thread) : done_(done), thread_(thread) {}
  ~StopAndJoin() {
    done_ = true;
    if (thread_.joinable()) thread_.join();
  }
  StopAndJoin(const StopAndJoin&) = delete;
  StopAndJoin& operator=(const StopAndJoin&) = delete;

 private:
  std::atomic<bool>& done_;
  std::thread& thread_;
};

// How many times slower than usual this build runs: ThreadSanitizer costs
// about ten. Deadlines for heavy work a test drives itself are multiplied by
// it; bounds that coordd promises are not.
#if defined(__SANITIZE_THREAD__)
inline constexpr int kBuildSlowdown = 10;
#else
inline constexpr int kBuildSlowdown = 1;
#endif

// Waits up to `timeout` until `condition` holds, checking every millisecond.
bool eventually(const std::function<bool()>& condition, std::chrono::milliseconds timeout = 5s);

std::string readFile(const std::string& path);
// The address of a Unix socket at `path`; throws if the path is too long.
sockaddr_un unixAddress(const std::string& path);
std::vector<std::string> readLines(const std::string& path);
// CLOCK_MONOTONIC in microseconds: the same clock in every process.
int64_t monotonicMicros();
// The path of this executable, for running it again in a worker mode.
std::string selfPath();
// The parent of a process (from /proc); 0 if it cannot be read.
pid_t parentPid(pid_t pid);
// Resident memory (VmRSS) of a process in KiB; -1 if it cannot be read.
int64_t rssKiB(pid_t pid);

// The e2e binary doubles as a worker for `coordctl elect/lock -- CMD`.
// Returns the exit code when argv asks for worker mode, nullopt otherwise.
std::optional<int> runWorkerIfAsked(int argc, char** argv);
std::vector<std::string> workerCommand(const std::string& lock_file, const std::string& log_file);

// One line of a worker's log: "start", "stop" or "OVERLAP" (a second worker
// ran while another held the shared flock).
struct WorkerLine {
  std::string what;
  pid_t pid = 0;
  pid_t parent = 0;   // the coordctl that ran it (its watchdog's parent)
  int64_t at_us = 0;  // monotonicMicros()
  int64_t term = 0;   // COORDD_TERM
};
std::vector<WorkerLine> workerLog(const std::string& path);
size_t countLines(const std::vector<WorkerLine>& lines, const std::string& what);

}  // namespace coordd::e2e
