#pragma once

#include <sys/types.h>

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/types.h"

namespace coordd::config {

// Everything coordd can be told. Each field is a key of the YAML file and a
// flag; a flag overrides the file.
struct Config {
  std::vector<std::string> listen{"unix:/tmp/coordd.sock"};
  mode_t socket_mode = 0660;
  std::string log_format = "text";  // text | json
  std::string log_level = "info";   // trace | debug | info | warn | error
  absl::Duration shutdown_timeout = absl::Seconds(10);
  core::Limits limits;
  std::vector<std::string> admin_allowed_peers;
  std::map<std::string, std::string> node_attributes;
  // ZooKeeper ensemble with chroot, e.g. "zk1:2181,zk2:2181/replicante";
  // empty: the embedded coordinator.
  std::string zookeeper;
  absl::Duration session_timeout = absl::Seconds(10);
  absl::Duration cleaner_interval = absl::Seconds(60);
  int64_t cleaner_limit = 100;
  std::string zookeeper_auth;          // digest "user:password"
  std::string zookeeper_acl = "open";  // open | creator
};

struct CommandLine {
  Config config;
  bool help = false;
  bool version = false;
  bool check_config = false;  // validate, print the result, exit
};

// Parses argv (without the program name): flags, and the file named by
// --config. Errors name the flag or the file and key.
absl::StatusOr<CommandLine> parseCommandLine(const std::vector<std::string>& args);

std::string usage();

// The configuration in force, as YAML, for --check-config and the start log.
std::string describe(const Config& config);

}  // namespace coordd::config
