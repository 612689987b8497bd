// coordd: parse the configuration, wire the objects, serve until signalled.
#include <atomic>
#include <csignal>
#include <cstdio>
#include <memory>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "backend/memory/embedded.h"
#include "backend/zookeeper/zookeeper_backend.h"
#include "config/config.h"
#include "config/logging.h"
#include "core/core.h"
#include "core/ids.h"
#include "metrics/daemon_metrics.h"
#include "metrics/http_server.h"
#include "server/server.h"
#include "spdlog/spdlog.h"

int main(int argc, char** argv) {
  using namespace coordd;
  auto command_line = config::parseCommandLine(std::vector<std::string>(argv + 1, argv + argc));
  if (!command_line.ok()) {
    std::fprintf(stderr, "coordd: %s\n", std::string(command_line.status().message()).c_str());
    return 2;
  }
  if (command_line->help) {
    std::fputs(config::usage().c_str(), stdout);
    return 0;
  }
  if (command_line->version) {
    std::printf("coordd %s\n", COORDD_VERSION);
    return 0;
  }
  const config::Config& cfg = command_line->config;
  if (command_line->check_config) {
    std::printf("configuration is valid:\n%s", config::describe(cfg).c_str());
    return 0;
  }

  // Signals are taken by sigwait below; every thread started from here on
  // inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  config::setupLogging(cfg.log_format, cfg.log_level);
  const std::string node_id = core::randomHex(32);
  spdlog::info("coordd {} starting: node {}", COORDD_VERSION, node_id);
  auto metrics = std::make_shared<metrics::DaemonMetrics>();
  std::unique_ptr<backend::Backend> backend_ptr;
  if (cfg.zookeeper.empty()) {
    spdlog::warn(
        "no coordinator configured: using the embedded coordinator, which coordinates only the processes of "
        "this host");
    backend_ptr = backend::memory::makeEmbeddedBackend(metrics);
  } else {
    backend_ptr = backend::zookeeper::makeZookeeperBackend(backend::zookeeper::ZookeeperOptions{
        cfg.zookeeper, cfg.session_timeout, cfg.cleaner_interval, cfg.cleaner_limit, cfg.zookeeper_auth,
        cfg.zookeeper_acl == "creator", metrics});
  }
  backend::Backend& backend = *backend_ptr;

  // The core reports readiness from the backend's thread.
  std::atomic<server::Server*> server_ptr{nullptr};
  core::CoreOptions core_options{node_id, cfg.limits,
                                 [&server_ptr](bool serving) {
                                   if (auto* server = server_ptr.load()) server->setServing(serving);
                                 },
                                 metrics};
  core::Core core(core_options, backend);
  server::ServerOptions server_options{
      cfg.listen,
      {cfg.socket_mode, cfg.socket_owner, cfg.socket_group},
      {cfg.tls_cert, cfg.tls_key, cfg.tls_client_ca},
      {cfg.api_uids, cfg.api_gids, cfg.admin_uids, cfg.admin_gids, cfg.admin_allowed_peers},
      {COORDD_VERSION, node_id},
      cfg.health_listen,
      metrics};
  auto server = server::Server::start(server_options, core, backend);
  if (!server.ok()) {
    spdlog::error("cannot start: {}", server.status().ToString());
    return 1;
  }
  server_ptr = server->get();
  // However main returns from here: the server stops before the backend,
  // whose thread answers its calls, and the backend, which reports readiness
  // to it, stops before the server is destroyed.
  absl::Cleanup stop_in_order = [&server, &backend] {
    (*server)->shutdown(absl::ZeroDuration());
    backend.stop();
  };
  core.start();
  backend.registerMember(backend::Member{node_id, cfg.node_attributes, COORDD_VERSION, absl::Now()});
  for (const auto& address : (*server)->addresses()) spdlog::info("listening on {}", address);
  std::unique_ptr<metrics::HttpServer> http;
  if (!cfg.http_listen.empty()) {
    auto started = metrics::HttpServer::start(
        cfg.http_listen,
        {{"/metrics",
          [&metrics] {
            return metrics::HttpResponse{200, "text/plain; version=0.0.4; charset=utf-8", metrics->registry.render()};
          }},
         {"/healthz",
          [] {
            return metrics::HttpResponse{200, "text/plain; charset=utf-8", "ok\n"};
          }},
         {"/readyz", [&core] {
            const core::DaemonStatus status = core.daemonStatus();
            if (status.ready) return metrics::HttpResponse{200, "text/plain; charset=utf-8", "ready\n"};
            return metrics::HttpResponse{
                503, "text/plain; charset=utf-8",
                absl::StrCat("not ready: coordinator link ", backend::linkStateName(status.link), "\n")};
          }}});
    if (!started.ok()) {
      spdlog::error("cannot start: http.listen: {}", started.status().ToString());
      return 1;
    }
    http = *std::move(started);
    spdlog::info("serving /metrics, /healthz and /readyz on http://{}", http->address());
  }

  int signal = 0;
  sigwait(&signals, &signal);
  spdlog::info("received {}: shutting down (drain bound {})", signal == SIGTERM ? "SIGTERM" : "SIGINT",
               absl::FormatDuration(cfg.shutdown_timeout));
  absl::Time deadline = absl::Now() + cfg.shutdown_timeout;
  core.shutdown("daemon shutting down", cfg.shutdown_timeout);
  (*server)->shutdown(std::max(absl::ZeroDuration(), deadline - absl::Now()));
  backend.stop();
  spdlog::info("stopped");
  return 0;
}
