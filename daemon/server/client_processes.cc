#include "server/client_processes.h"

#include <poll.h>
// glibc 2.36 declares these without C linkage (fixed in 2.37).
extern "C" {
#include <sys/pidfd.h>
}
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "spdlog/spdlog.h"

namespace coordd::server {

class Pidfd {
 public:
  // fd < 0: the process had exited before it could be opened.
  explicit Pidfd(int fd) : fd_(fd) {}
  ~Pidfd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Pidfd(const Pidfd&) = delete;
  Pidfd& operator=(const Pidfd&) = delete;

  bool exited() const {
    if (fd_ < 0) return true;
    pollfd fds{fd_, POLLIN, 0};
    return ::poll(&fds, 1, 0) > 0;  // readable once the process has exited
  }

 private:
  const int fd_;
};

namespace {

class WatchedProcesses final : public core::ClientProcesses {
 public:
  template <typename Pidfds>
  explicit WatchedProcesses(Pidfds pidfds) : pidfds_(std::move(pidfds)) {}

  bool gone() const override {
    return std::all_of(pidfds_.begin(), pidfds_.end(), [](const auto& pidfd) { return pidfd->exited(); });
  }

 private:
  const std::vector<std::shared_ptr<const Pidfd>> pidfds_;
};

}  // namespace

std::shared_ptr<const Pidfd> ClientProcessTable::open(pid_t pid) {
  auto& slot = open_[pid];
  if (auto shared = slot.lock(); shared && !shared->exited()) return shared;
  // None yet, or that process is gone and `pid` may name a new one.
  const int fd = ::pidfd_open(pid, 0);
  if (fd < 0 && errno != ESRCH) {
    spdlog::warn("cannot watch client process {}: pidfd_open: {}; its sessions end only by ttl after a broken stream",
                 pid, std::strerror(errno));
    return nullptr;
  }
  auto pidfd = std::make_shared<const Pidfd>(fd);
  slot = pidfd;
  return pidfd;
}

std::shared_ptr<const core::ClientProcesses> ClientProcessTable::watch(const PeerCredentials& peer, pid_t client_pid,
                                                                       const std::vector<pid_t>& guard_pids) {
  if (peer.pid <= 0 || peer.pid != client_pid) return nullptr;
  std::lock_guard<std::mutex> lock(mu_);
  // Forget the entries of processes nobody watches any more.
  for (auto it = open_.begin(); it != open_.end();) it = it->second.expired() ? open_.erase(it) : std::next(it);
  std::vector<std::shared_ptr<const Pidfd>> pidfds;
  for (pid_t pid : guard_pids) pidfds.push_back(open(pid));
  pidfds.push_back(open(client_pid));
  if (std::any_of(pidfds.begin(), pidfds.end(), [](const auto& pidfd) { return pidfd == nullptr; })) return nullptr;
  return std::make_shared<WatchedProcesses>(std::move(pidfds));
}

}  // namespace coordd::server
