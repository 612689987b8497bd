#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"

namespace coordd::metrics {

struct HttpResponse {
  int code = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};
// Answers a GET of one path. Runs on the server's thread.
using HttpHandler = std::function<HttpResponse()>;

// A small HTTP/1.1 server for /metrics and the probes: GET only, one
// request per connection, answered from fixed routes.
//
// NOTE: simplifying assumptions.
// * One thread polls every connection; handlers run on it one at a time, so
//   they must be quick (they read in-memory state).
// * A request must arrive whole within 5 s and 8 KiB, and at most 64
//   connections are open; past that a connection is closed unanswered.
class HttpServer {
 public:
  // Binds host:port (port 0: any free one) and serves on a thread.
  static absl::StatusOr<std::unique_ptr<HttpServer>> start(const std::string& address,
                                                           std::map<std::string, HttpHandler> routes);
  ~HttpServer();  // stops serving
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // The address as bound, with the actual port.
  const std::string& address() const { return address_; }

 private:
  HttpServer(int listen_fd, int wake_fd, std::string address, std::map<std::string, HttpHandler> routes);
  void serve();
  std::string respond(const std::string& request) const;

  const int listen_fd_;
  const int wake_fd_;  // an eventfd: written to stop the thread
  const std::string address_;
  const std::map<std::string, HttpHandler> routes_;
  std::thread thread_;
};

}  // namespace coordd::metrics
