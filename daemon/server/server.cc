#include "server/server.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace coordd::server {
namespace {

constexpr int kMaxMessageBytes = 1 << 20;  // far above any valid request

// Whether something accepts connections on the Unix socket at `path`.
bool socketAnswers(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  bool answers = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  ::close(fd);
  return answers;
}

absl::Status prepareUnixSocket(const std::string& path) {
  if (path.size() >= sizeof(sockaddr_un::sun_path)) {
    return absl::InvalidArgumentError(absl::StrCat("listen: unix socket path too long: ", path));
  }
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

}  // namespace

Server::Server(core::Core& core, backend::Backend& backend, const ServerOptions& options)
    : sessions_(core), locks_(core), elections_(core, backend), admin_(core, backend, options.admin) {}

Server::~Server() {
  if (server_) shutdown(absl::ZeroDuration());
}

absl::StatusOr<std::unique_ptr<Server>> Server::start(const ServerOptions& options, core::Core& core,
                                                      backend::Backend& backend) {
  std::unique_ptr<Server> server(new Server(core, backend, options));
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.SetMaxReceiveMessageSize(kMaxMessageBytes);
  std::vector<std::pair<std::string, std::unique_ptr<int>>> tcp_ports;
  for (const auto& address : options.listen) {
    if (absl::StartsWith(address, "unix:")) {
      std::string path = address.substr(5);
      if (auto status = prepareUnixSocket(path); !status.ok()) return status;
      server->socket_paths_.push_back(path);
      builder.AddListeningPort(address, grpc::InsecureServerCredentials());
    } else {
      tcp_ports.emplace_back(address, std::make_unique<int>(0));
      builder.AddListeningPort(address, grpc::InsecureServerCredentials(), tcp_ports.back().second.get());
    }
  }
  builder.RegisterService(&server->sessions_);
  builder.RegisterService(&server->locks_);
  builder.RegisterService(&server->elections_);
  builder.RegisterService(&server->admin_);
  server->server_ = builder.BuildAndStart();
  if (!server->server_) {
    return absl::UnavailableError(absl::StrCat("listen: cannot bind every address of [",
                                               absl::StrJoin(options.listen, ", "), "] (in use, or no permission?)"));
  }
  for (const auto& address : options.listen) {
    if (absl::StartsWith(address, "unix:")) server->addresses_.push_back(address);
  }
  for (const auto& [address, port] : tcp_ports) {
    if (*port == 0) return absl::UnavailableError(absl::StrCat("listen: cannot bind ", address));
    server->addresses_.push_back(absl::StrCat(address.substr(0, address.rfind(':')), ":", *port));
  }
  for (const auto& path : server->socket_paths_) {
    if (::chmod(path.c_str(), options.socket_mode) != 0) {
      return absl::FailedPreconditionError(absl::StrCat("socket_mode: chmod ", path, ": ", std::strerror(errno)));
    }
  }
  server->setServing(false);
  return server;
}

void Server::setServing(bool serving) {
  if (auto* health = server_ ? server_->GetHealthCheckService() : nullptr) health->SetServingStatus(serving);
}

void Server::shutdown(absl::Duration deadline) {
  if (!server_) return;
  server_->Shutdown(std::chrono::system_clock::now() + absl::ToChronoMilliseconds(deadline));
  server_->Wait();
  server_.reset();
  for (const auto& path : socket_paths_) ::unlink(path.c_str());
}

}  // namespace coordd::server
