#pragma once

#include <sys/types.h>

#include <map>
#include <optional>
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
  // Owner and group of the Unix sockets; unset: coordd's own.
  std::optional<uid_t> socket_owner;
  std::optional<gid_t> socket_group;
  // Unix socket peers (by SO_PEERCRED) allowed to call the API, and Admin.
  // Empty API lists: anyone who can open the socket. Empty Admin lists: as
  // for the API.
  std::vector<uid_t> api_uids;
  std::vector<gid_t> api_gids;
  std::vector<uid_t> admin_uids;
  std::vector<gid_t> admin_gids;
  // TLS for TCP listeners (required with any); client_ca: mTLS.
  std::string tls_cert;
  std::string tls_key;
  std::string tls_client_ca;
  // host:port serving /metrics, /healthz and /readyz over HTTP; empty: off.
  std::string http_listen;
  // host:port serving only gRPC health checks, plaintext; empty: off.
  std::string health_listen;
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

// Applies a YAML configuration, as --config would, to the defaults (the
// checks across keys that parseCommandLine makes are not made).
absl::StatusOr<Config> parseConfigText(const std::string& text);

std::string usage();

// The configuration in force, as YAML, for --check-config and the start log.
std::string describe(const Config& config);

}  // namespace coordd::config
