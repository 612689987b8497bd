#include "app/daemon.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "backend/memory/embedded.h"
#include "backend/zookeeper/zookeeper_backend.h"
#include "core/ids.h"
#include "spdlog/spdlog.h"

namespace coordd::app {
namespace {

std::unique_ptr<backend::Backend> makeBackend(const config::Config& config,
                                              std::shared_ptr<metrics::DaemonMetrics> metrics) {
  if (config.zookeeper.empty()) {
    spdlog::warn(
        "no coordinator configured: using the embedded coordinator, which coordinates only the processes of "
        "this host");
    return backend::memory::makeEmbeddedBackend(std::move(metrics));
  }
  return backend::zookeeper::makeZookeeperBackend(backend::zookeeper::ZookeeperOptions{
      config.zookeeper, config.session_timeout, config.cleaner_interval, config.cleaner_limit, config.zookeeper_auth,
      config.zookeeper_acl == "creator", std::move(metrics)});
}

}  // namespace

Daemon::Daemon(const config::Config& config)
    : config_(config), node_id_(core::randomHex(32)), metrics_(std::make_shared<metrics::DaemonMetrics>()) {
  spdlog::info("coordd {} starting: node {}", COORDD_VERSION, node_id_);
  backend_ = makeBackend(config_, metrics_);
  core::CoreOptions options{node_id_, config_.limits,
                            [this](bool serving) {
                              if (auto* server = serving_.load()) server->setServing(serving);
                            },
                            metrics_};
  core_ = std::make_unique<core::Core>(std::move(options), *backend_);
}

absl::StatusOr<std::unique_ptr<Daemon>> Daemon::start(const config::Config& config) {
  std::unique_ptr<Daemon> daemon(new Daemon(config));
  if (absl::Status started = daemon->startListeners(); !started.ok()) return started;
  return daemon;
}

absl::Status Daemon::startListeners() {
  server::ServerOptions server_options{
      config_.listen,
      {config_.socket_mode, config_.socket_owner, config_.socket_group},
      {config_.tls_cert, config_.tls_key, config_.tls_client_ca},
      {config_.api_uids, config_.api_gids, config_.admin_uids, config_.admin_gids, config_.admin_allowed_peers},
      {COORDD_VERSION, node_id_},
      config_.health_listen,
      metrics_};
  auto server = server::Server::start(server_options, *core_, *backend_);
  if (!server.ok()) return server.status();
  server_ = *std::move(server);
  serving_ = server_.get();
  core_->start();
  backend_->registerMember(backend::Member{node_id_, config_.node_attributes, COORDD_VERSION, absl::Now()});
  for (const auto& address : server_->addresses()) spdlog::info("listening on {}", address);
  if (config_.http_listen.empty()) return absl::OkStatus();

  auto http = metrics::HttpServer::start(
      config_.http_listen,
      {{"/metrics",
        [this] {
          return metrics::HttpResponse{200, "text/plain; version=0.0.4; charset=utf-8", metrics_->registry.render()};
        }},
       {"/healthz",
        [] {
          return metrics::HttpResponse{200, "text/plain; charset=utf-8", "ok\n"};
        }},
       {"/readyz", [this] {
          const core::DaemonStatus status = core_->daemonStatus();
          if (status.ready) return metrics::HttpResponse{200, "text/plain; charset=utf-8", "ready\n"};
          return metrics::HttpResponse{
              503, "text/plain; charset=utf-8",
              absl::StrCat("not ready: coordinator link ", backend::linkStateName(status.link), "\n")};
        }}});
  if (!http.ok()) return absl::Status(http.status().code(), absl::StrCat("http.listen: ", http.status().message()));
  http_ = *std::move(http);
  spdlog::info("serving /metrics, /healthz and /readyz on http://{}", http_->address());
  return absl::OkStatus();
}

void Daemon::shutdown() {
  if (stopped_) return;
  spdlog::info("shutting down (drain bound {})", absl::FormatDuration(config_.shutdown_timeout));
  const absl::Time deadline = absl::Now() + config_.shutdown_timeout;
  core_->shutdown("daemon shutting down", config_.shutdown_timeout);
  stop(std::max(absl::ZeroDuration(), deadline - absl::Now()));
}

void Daemon::stop(absl::Duration drain) {
  if (stopped_) return;
  stopped_ = true;
  http_.reset();
  if (server_) server_->shutdown(drain);
  backend_->stop();
}

Daemon::~Daemon() { stop(absl::ZeroDuration()); }

}  // namespace coordd::app
