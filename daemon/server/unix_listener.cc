#include "server/unix_listener.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <grpcpp/server_posix.h>

#include "absl/strings/str_cat.h"
#include "spdlog/spdlog.h"

namespace coordd::server {
namespace {

sockaddr_un addressOf(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return addr;
}

// Whether something accepts connections on the Unix socket at `path`.
bool socketAnswers(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_un addr = addressOf(path);
  bool answers = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  ::close(fd);
  return answers;
}

absl::Status removeStale(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return absl::OkStatus();
  if (!S_ISSOCK(st.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat("listen: ", path, " exists and is not a socket"));
  }
  if (socketAnswers(path)) {
    return absl::AlreadyExistsError(absl::StrCat("listen: another process (a running coordd?) serves on unix:", path));
  }
  if (::unlink(path.c_str()) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("listen: cannot remove stale socket ", path, ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

PeerCredentials credentialsOf(int fd) {
  PeerCredentials peer;
  ucred cred{};
  socklen_t len = sizeof(cred);
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
    peer.pid = cred.pid;
    peer.uid = cred.uid;
    peer.gids.push_back(cred.gid);
  } else {
    peer.uid = static_cast<uid_t>(-1);  // matches no rule
  }
  gid_t groups[256];
  len = sizeof(groups);
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) == 0) {
    peer.gids.insert(peer.gids.end(), groups, groups + len / sizeof(gid_t));
  }
  return peer;
}

}  // namespace

absl::StatusOr<std::unique_ptr<UnixListener>> UnixListener::bind(const std::string& path,
                                                                 const UnixSocketOptions& options) {
  if (path.size() >= sizeof(sockaddr_un::sun_path)) {
    return absl::InvalidArgumentError(absl::StrCat("listen: unix socket path too long: ", path));
  }
  if (auto status = removeStale(path); !status.ok()) return status;
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr = addressOf(path);
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || ::listen(fd, SOMAXCONN) != 0) {
    const std::string why = std::strerror(errno);
    if (fd >= 0) ::close(fd);
    return absl::UnavailableError(absl::StrCat("listen: cannot bind unix:", path, ": ", why));
  }
  std::unique_ptr<UnixListener> listener(new UnixListener(path, fd));
  if (::chmod(path.c_str(), options.mode) != 0) {
    return absl::FailedPreconditionError(absl::StrCat("socket_mode: chmod ", path, ": ", std::strerror(errno)));
  }
  if ((options.owner || options.group) && ::chown(path.c_str(), options.owner.value_or(static_cast<uid_t>(-1)),
                                                  options.group.value_or(static_cast<gid_t>(-1))) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("socket_owner/socket_group: chown ", path, ": ", std::strerror(errno)));
  }
  return listener;
}

UnixListener::~UnixListener() {
  // Wakes the blocked accept; the thread then sees the socket shut.
  ::shutdown(fd_, SHUT_RDWR);
  if (thread_.joinable()) thread_.join();
  ::close(fd_);
  ::unlink(path_.c_str());
}

void UnixListener::serve(grpc::Server& server, PeerAccess& access) {
  thread_ = std::thread([this, &server, &access] { acceptLoop(server, access); });
}

void UnixListener::acceptLoop(grpc::Server& server, PeerAccess& access) {
  for (;;) {
    int fd = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EMFILE || errno == ENFILE) {
        spdlog::warn("listen: unix:{}: out of file descriptors; not accepting for 100ms", path_);
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        continue;
      }
      return;  // shut down
    }
    access.connected(fd, credentialsOf(fd));
    grpc::AddInsecureChannelFromFd(&server, fd);
  }
}

}  // namespace coordd::server
