#include "server/server.h"

#include <fstream>
#include <sstream>

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/call_metrics.h"

namespace coordd::server {
namespace {

constexpr int kMaxMessageBytes = 1 << 20;  // far above any valid request

absl::StatusOr<std::string> readPem(const std::string& path, const std::string& key) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  if (!in || text.str().find("-----BEGIN ") == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(key, ": ", path, " is not a readable PEM file"));
  }
  return text.str();
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> tlsCredentials(const TlsFiles& tls) {
  auto cert = readPem(tls.cert, "tls.cert");
  if (!cert.ok()) return cert.status();
  auto key = readPem(tls.key, "tls.key");
  if (!key.ok()) return key.status();
  grpc::SslServerCredentialsOptions options(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  options.pem_key_cert_pairs.push_back({*key, *cert});
  if (!tls.client_ca.empty()) {
    auto ca = readPem(tls.client_ca, "tls.client_ca");
    if (!ca.ok()) return ca.status();
    options.pem_root_certs = *ca;
    options.client_certificate_request = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  }
  return grpc::SslServerCredentials(options);
}

}  // namespace

Server::Server(core::Core& core, backend::Backend& backend, const ServerOptions& options)
    : access_(options.access),
      sessions_(core, access_),
      locks_(core, access_),
      elections_(core, backend, access_),
      admin_(core, backend, options.admin, access_) {}

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
  // gRPC binds TCP ports with SO_REUSEPORT unless told not to: a second
  // daemon on the same port would start and take half the connections.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  std::vector<std::pair<std::string, std::unique_ptr<int>>> tcp_ports;
  for (const auto& address : options.listen) {
    if (absl::StartsWith(address, "unix:")) {
      auto listener = UnixListener::bind(address.substr(5), options.unix_socket);
      if (!listener.ok()) return listener.status();
      server->unix_listeners_.push_back(*std::move(listener));
      server->addresses_.push_back(address);
      continue;
    }
    auto credentials = tlsCredentials(options.tls);
    if (!credentials.ok()) return credentials.status();
    tcp_ports.emplace_back(address, std::make_unique<int>(0));
    builder.AddListeningPort(address, *credentials, tcp_ports.back().second.get());
  }
  builder.RegisterService(&server->sessions_);
  builder.RegisterService(&server->locks_);
  builder.RegisterService(&server->elections_);
  builder.RegisterService(&server->admin_);
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(std::make_unique<CallMetricsFactory>(options.metrics));
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  server->server_ = builder.BuildAndStart();
  if (!server->server_) return absl::UnavailableError("listen: cannot start the gRPC server");
  for (const auto& [address, port] : tcp_ports) {
    if (*port == 0) return absl::UnavailableError(absl::StrCat("listen: cannot bind ", address, " (in use?)"));
    server->addresses_.push_back(absl::StrCat(address.substr(0, address.rfind(':')), ":", *port, " (TLS)"));
  }
  if (!options.health_listen.empty()) {
    // Only the health service: the default one is added to every server.
    grpc::ServerBuilder health_builder;
    health_builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
    int port = 0;
    health_builder.AddListeningPort(options.health_listen, grpc::InsecureServerCredentials(), &port);
    server->health_server_ = health_builder.BuildAndStart();
    if (!server->health_server_ || port == 0) {
      return absl::UnavailableError(absl::StrCat("health.listen: cannot bind ", options.health_listen, " (in use?)"));
    }
    const std::string& address = options.health_listen;
    server->addresses_.push_back(
        absl::StrCat(address.substr(0, address.rfind(':')), ":", port, " (gRPC health only, plaintext)"));
  }
  for (auto& listener : server->unix_listeners_) listener->serve(*server->server_, server->access_);
  server->setServing(false);
  return server;
}

void Server::setServing(bool serving) {
  std::lock_guard<std::mutex> lock(serving_mu_);
  if (stopped_) return;
  for (grpc::Server* server : {server_.get(), health_server_.get()}) {
    if (auto* health = server ? server->GetHealthCheckService() : nullptr) health->SetServingStatus(serving);
  }
}

void Server::shutdown(absl::Duration deadline) {
  {
    // Not held while calls drain: their answers come from the backend's
    // thread, which may be waiting in setServing().
    std::lock_guard<std::mutex> lock(serving_mu_);
    if (stopped_) return;
    stopped_ = true;
  }
  if (!server_) return;
  unix_listeners_.clear();  // no new connections
  server_->Shutdown(std::chrono::system_clock::now() + absl::ToChronoMilliseconds(deadline));
  server_->Wait();
  server_.reset();
  if (health_server_) health_server_->Shutdown(std::chrono::system_clock::now());
  health_server_.reset();
}

}  // namespace coordd::server
