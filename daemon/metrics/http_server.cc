#include "metrics/http_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "spdlog/spdlog.h"

namespace coordd::metrics {
namespace {

constexpr size_t kMaxRequest = 8 * 1024;
constexpr size_t kMaxConnections = 64;
constexpr auto kRequestTimeout = std::chrono::seconds(5);

const char* reasonPhrase(int code) {
  switch (code) {
    case 200:
      return "OK";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 400:
      return "Bad Request";
    case 431:
      return "Request Header Fields Too Large";
    case 503:
      return "Service Unavailable";
    default:
      return "Error";
  }
}

std::string render(const HttpResponse& response) {
  return absl::StrCat("HTTP/1.1 ", response.code, " ", reasonPhrase(response.code),
                      "\r\nContent-Type: ", response.content_type, "\r\nContent-Length: ", response.body.size(),
                      "\r\nConnection: close\r\n\r\n", response.body);
}

std::string errnoText(const char* what) { return absl::StrCat(what, ": ", std::strerror(errno)); }

// host:port or [v6host]:port -> bound, non-blocking, listening socket.
absl::StatusOr<int> listenOn(const std::string& address, std::string& bound) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos) return absl::InvalidArgumentError(absl::StrCat(address, ": expected host:port"));
  std::string host = address.substr(0, colon);
  const std::string port = address.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  if (int rc = getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints, &found); rc != 0) {
    return absl::InvalidArgumentError(absl::StrCat(address, ": ", gai_strerror(rc)));
  }
  std::unique_ptr<addrinfo, void (*)(addrinfo*)> owned(found, freeaddrinfo);
  const int fd = socket(found->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(errnoText("socket"));
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(fd, found->ai_addr, found->ai_addrlen) != 0 || listen(fd, 64) != 0) {
    const std::string why = errnoText("bind");
    close(fd);
    return absl::UnavailableError(absl::StrCat(address, ": ", why));
  }
  sockaddr_storage local{};
  socklen_t length = sizeof(local);
  getsockname(fd, reinterpret_cast<sockaddr*>(&local), &length);
  char text[INET6_ADDRSTRLEN] = {};
  int actual_port = 0;
  if (local.ss_family == AF_INET6) {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&local);
    inet_ntop(AF_INET6, &v6->sin6_addr, text, sizeof(text));
    actual_port = ntohs(v6->sin6_port);
    bound = absl::StrCat("[", text, "]:", actual_port);
  } else {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(&local);
    inet_ntop(AF_INET, &v4->sin_addr, text, sizeof(text));
    actual_port = ntohs(v4->sin_port);
    bound = absl::StrCat(text, ":", actual_port);
  }
  return fd;
}

struct Connection {
  int fd = -1;
  std::string in;
  std::string out;
  size_t sent = 0;
  std::chrono::steady_clock::time_point deadline;
};

}  // namespace

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::start(const std::string& address,
                                                              std::map<std::string, HttpHandler> routes) {
  std::string bound;
  absl::StatusOr<int> fd = listenOn(address, bound);
  if (!fd.ok()) return fd.status();
  const int wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake < 0) {
    close(*fd);
    return absl::InternalError(errnoText("eventfd"));
  }
  std::unique_ptr<HttpServer> server(new HttpServer(*fd, wake, std::move(bound), std::move(routes)));
  server->thread_ = std::thread([raw = server.get()] { raw->serve(); });
  return server;
}

HttpServer::HttpServer(int listen_fd, int wake_fd, std::string address, std::map<std::string, HttpHandler> routes)
    : listen_fd_(listen_fd), wake_fd_(wake_fd), address_(std::move(address)), routes_(std::move(routes)) {}

HttpServer::~HttpServer() {
  const uint64_t one = 1;
  if (write(wake_fd_, &one, sizeof(one)) < 0) spdlog::warn("http: cannot wake the server thread");
  if (thread_.joinable()) thread_.join();
  close(listen_fd_);
  close(wake_fd_);
}

std::string HttpServer::respond(const std::string& request) const {
  // "GET /path HTTP/1.1": the query string is ignored.
  const std::vector<std::string> parts = absl::StrSplit(request.substr(0, request.find("\r\n")), ' ');
  if (parts.size() != 3 || !absl::StartsWith(parts[2], "HTTP/1.")) {
    return render({400, "text/plain; charset=utf-8", "bad request\n"});
  }
  if (parts[0] != "GET" && parts[0] != "HEAD") {
    return render({405, "text/plain; charset=utf-8", "only GET is served\n"});
  }
  auto route = routes_.find(parts[1].substr(0, parts[1].find('?')));
  HttpResponse response;
  if (route == routes_.end()) {
    std::string known;
    for (const auto& [path, handler] : routes_) absl::StrAppend(&known, known.empty() ? "" : " ", path);
    response = {404, "text/plain; charset=utf-8", absl::StrCat("not found; served: ", known, "\n")};
  } else {
    response = route->second();
  }
  std::string text = render(response);
  if (parts[0] == "HEAD") text.resize(text.size() - response.body.size());
  return text;
}

void HttpServer::serve() {
  std::vector<Connection> connections;
  for (;;) {
    std::vector<pollfd> fds{{wake_fd_, POLLIN, 0}, {listen_fd_, POLLIN, 0}};
    for (const Connection& c : connections) {
      fds.push_back({c.fd, static_cast<short>(c.out.empty() ? POLLIN : POLLOUT), 0});
    }
    if (poll(fds.data(), fds.size(), 1000) < 0 && errno != EINTR) {
      spdlog::error("http: poll failed: {}", std::strerror(errno));
      return;
    }
    if (fds[0].revents != 0) break;
    const auto now = std::chrono::steady_clock::now();
    // Connections first: accepting appends to `connections`, which fds[] mirrors.
    for (size_t i = 0; i < connections.size(); ++i) {
      Connection& c = connections[i];
      const short events = fds[i + 2].revents;
      bool done = now >= c.deadline || (events & (POLLERR | POLLNVAL)) != 0;
      if (!done && c.out.empty() && (events & (POLLIN | POLLHUP)) != 0) {
        char buffer[2048];
        const ssize_t n = read(c.fd, buffer, sizeof(buffer));
        if (n > 0) {
          c.in.append(buffer, static_cast<size_t>(n));
          if (c.in.find("\r\n\r\n") != std::string::npos) {
            c.out = respond(c.in);
          } else if (c.in.size() > kMaxRequest) {
            c.out = render({431, "text/plain; charset=utf-8", "request too large\n"});
          }
        } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
          done = true;
        }
      } else if (!done && !c.out.empty() && (events & POLLOUT) != 0) {
        const ssize_t n = send(c.fd, c.out.data() + c.sent, c.out.size() - c.sent, MSG_NOSIGNAL);
        if (n > 0) c.sent += static_cast<size_t>(n);
        done = n < 0 ? (errno != EAGAIN && errno != EINTR) : c.sent == c.out.size();
      }
      if (done) {
        close(c.fd);
        c.fd = -1;
      }
    }
    connections.erase(
        std::remove_if(connections.begin(), connections.end(), [](const Connection& c) { return c.fd < 0; }),
        connections.end());
    if (fds[1].revents & POLLIN) {
      for (;;) {
        const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) break;
        if (connections.size() >= kMaxConnections) {
          close(fd);
          continue;
        }
        connections.push_back(Connection{fd, {}, {}, 0, now + kRequestTimeout});
      }
    }
  }
  for (const Connection& c : connections) close(c.fd);
}

}  // namespace coordd::metrics
