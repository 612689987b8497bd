// Worker mode of the e2e binary: what `coordctl elect -- CMD` runs in tests.
// It takes an exclusive flock on a shared file for as long as it lives, so two
// workers running at once cannot go unnoticed, and logs its life to a file.
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <thread>

#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "harness.h"

namespace coordd::e2e {
namespace {

constexpr char kWorkerFlag[] = "--e2e-worker";
volatile std::sig_atomic_t stop_requested = 0;

// The coordctl that runs this worker: the parent of its watchdog, which is
// the worker's parent. Read at start, while both live.
pid_t coordctl_pid = 0;

void logLine(const std::string& log_file, const std::string& what) {
  std::ofstream(log_file, std::ios::app) << absl::StrCat(what, " ", getpid(), " ", coordctl_pid, " ", monotonicMicros(),
                                                         " ",
                                                         std::getenv("COORDD_TERM") ? std::getenv("COORDD_TERM") : "0")
                                         << std::endl;
}

}  // namespace

std::vector<std::string> workerCommand(const std::string& lock_file, const std::string& log_file) {
  return {selfPath(), kWorkerFlag, lock_file, log_file};
}

std::vector<WorkerLine> workerLog(const std::string& path) {
  std::vector<WorkerLine> lines;
  for (const auto& line : readLines(path)) {
    std::vector<std::string> f = absl::StrSplit(line, ' ');
    WorkerLine w;
    if (f.size() != 5 || !absl::SimpleAtoi(f[1], &w.pid) || !absl::SimpleAtoi(f[2], &w.parent) ||
        !absl::SimpleAtoi(f[3], &w.at_us) || !absl::SimpleAtoi(f[4], &w.term)) {
      continue;  // a line being written
    }
    w.what = f[0];
    lines.push_back(w);
  }
  return lines;
}

size_t countLines(const std::vector<WorkerLine>& lines, const std::string& what) {
  return static_cast<size_t>(
      std::count_if(lines.begin(), lines.end(), [&](const WorkerLine& l) { return l.what == what; }));
}

std::optional<int> runWorkerIfAsked(int argc, char** argv) {
  if (argc != 4 || std::strcmp(argv[1], kWorkerFlag) != 0) return std::nullopt;
  const std::string lock_file = argv[2];
  const std::string log_file = argv[3];
  coordctl_pid = parentPid(getppid());
  std::signal(SIGTERM, [](int) { stop_requested = 1; });
  int fd = open(lock_file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) != 0) {
    logLine(log_file, "OVERLAP");
    return 3;
  }
  logLine(log_file, "start");
  while (!stop_requested) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  logLine(log_file, "stop");
  return 0;
}

}  // namespace coordd::e2e
