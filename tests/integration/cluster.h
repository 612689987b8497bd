#pragma once

#include <memory>
#include <string>
#include <vector>

#include "coordd/client.h"
#include "harness.h"
#include "zookeeper.h"

namespace coordd::e2e {

// A coordd on ZooKeeper `ensemble` with a short session timeout.
inline std::unique_ptr<Daemon> zkDaemon(const std::string& ensemble, const std::string& session_timeout = "2s") {
  return std::make_unique<Daemon>(
      std::vector<std::string>{"--zookeeper", ensemble, "--session-timeout", session_timeout});
}

// `coordctl elect NAME -- worker` through `daemon`, the workers sharing one
// flock and one log.
inline std::unique_ptr<Process> startElect(Daemon& daemon, const std::string& election, const TempDir& shared) {
  std::vector<std::string> args = {"elect", election, "--"};
  for (const auto& a : workerCommand(shared.file("worker.lock"), shared.file("worker.log"))) args.push_back(a);
  return daemon.startCoordctl(args);
}

inline std::unique_ptr<coordd::Session> openSession(Daemon& daemon, std::unique_ptr<coordd::Client>& client,
                                                    const std::string& owner) {
  client = coordd::Client::connect(daemon.address()).value();
  coordd::SessionOptions options;
  options.owner = owner;
  options.ttl = absl::Seconds(30);
  return client->openSession(options).value();
}

}  // namespace coordd::e2e
