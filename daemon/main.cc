// coordd: parse the command line, start the daemon, serve until signalled.
#include <csignal>
#include <cstdio>
#include <memory>

#include "absl/synchronization/mutex.h"
#include "app/daemon.h"
#include "config/config.h"
#include "config/logging.h"
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

  // gRPC's mutexes are Abseil's, and Debian's Abseil tracks lock order on
  // every lock (its deadlock detector): 3.5% of the daemon's CPU under load.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  config::setupLogging(cfg.log_format, cfg.log_level);
  auto daemon = app::Daemon::start(cfg);
  if (!daemon.ok()) {
    spdlog::error("cannot start: {}", daemon.status().ToString());
    config::stopLogging();
    return 1;
  }
  int signal = 0;
  sigwait(&signals, &signal);
  spdlog::info("received {}", signal == SIGTERM ? "SIGTERM" : "SIGINT");
  (*daemon)->shutdown();
  daemon->reset();
  spdlog::info("stopped");
  config::stopLogging();
  return 0;
}
