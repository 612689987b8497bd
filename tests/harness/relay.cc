#include "relay.h"

#include "harness.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <utility>
#include <vector>

namespace coordd::e2e {
namespace {

// Copies what `from` has to `to`; false at its end or on an error.
bool forward(int from, int to) {
  char buffer[64 * 1024];
  const ssize_t n = read(from, buffer, sizeof(buffer));
  if (n <= 0) return false;
  for (ssize_t sent = 0; sent < n;) {
    const ssize_t w = send(to, buffer + sent, static_cast<size_t>(n - sent), MSG_NOSIGNAL);
    if (w <= 0) return false;
    sent += w;
  }
  return true;
}

}  // namespace

UnixRelay::UnixRelay(std::string listen_path, std::string target_path)
    : listen_path_(std::move(listen_path)), target_path_(std::move(target_path)) {
  listen_fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const sockaddr_un address = unixAddress(listen_path_);
  unlink(listen_path_.c_str());
  if (listen_fd_ < 0 || bind(listen_fd_, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) != 0 ||
      listen(listen_fd_, 16) != 0) {
    const std::string why = std::strerror(errno);
    if (listen_fd_ >= 0) close(listen_fd_);
    throw std::runtime_error("relay: cannot listen on " + listen_path_ + ": " + why);
  }
  thread_ = std::thread([this] { run(); });
}

UnixRelay::~UnixRelay() {
  stop_ = true;
  thread_.join();
  close(listen_fd_);
  unlink(listen_path_.c_str());
}

void UnixRelay::run() {
  struct Link {
    int client;
    int server;
  };
  std::vector<Link> links;
  while (!stop_) {
    // [0] the listener, then per link its client and its server side.
    std::vector<pollfd> fds{{listen_fd_, POLLIN, 0}};
    const bool hold = hold_;
    for (const Link& link : links) {
      fds.push_back({link.client, POLLIN, 0});
      fds.push_back({link.server, static_cast<short>(hold ? 0 : POLLIN), 0});
    }
    // A short timeout: a change of hold_ or stop_ is seen soon.
    if (poll(fds.data(), fds.size(), 10) < 0) continue;
    std::vector<Link> kept;
    for (size_t i = 0; i < links.size(); ++i) {
      const Link link = links[i];
      const short from_client = fds[1 + 2 * i].revents;
      const short from_server = fds[2 + 2 * i].revents;
      bool open = true;
      if (from_client != 0) open = forward(link.client, link.server);
      // While held, not even the server's hangup is passed on.
      if (open && from_server != 0 && !hold) open = forward(link.server, link.client);
      if (open) {
        kept.push_back(link);
      } else {
        close(link.client);
        close(link.server);
      }
    }
    links = std::move(kept);
    if ((fds[0].revents & POLLIN) != 0) {
      const int client = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (client < 0) continue;
      const int server = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      const sockaddr_un target = unixAddress(target_path_);
      if (server < 0 || connect(server, reinterpret_cast<const sockaddr*>(&target), sizeof(target)) != 0) {
        close(client);
        if (server >= 0) close(server);
        continue;
      }
      links.push_back({client, server});
    }
  }
  for (const Link& link : links) {
    close(link.client);
    close(link.server);
  }
}

}  // namespace coordd::e2e
