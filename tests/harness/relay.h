#pragma once

#include <atomic>
#include <string>
#include <thread>

namespace coordd::e2e {

// A relay in front of a Unix socket server, as a proxy on the path would be.
// It forwards bytes both ways until told to hold the server's: those then
// stay unread in the server's socket, whose writes still succeed, as with
// an answer that was sent and never arrived.
class UnixRelay {
 public:
  UnixRelay(std::string listen_path, std::string target_path);
  ~UnixRelay();
  UnixRelay(const UnixRelay&) = delete;
  UnixRelay& operator=(const UnixRelay&) = delete;

  // The gRPC address clients connect to.
  std::string address() const { return "unix:" + listen_path_; }
  void holdReplies(bool hold) { hold_ = hold; }

 private:
  void run();

  const std::string listen_path_;
  const std::string target_path_;
  int listen_fd_ = -1;
  std::atomic<bool> hold_{false};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace coordd::e2e
