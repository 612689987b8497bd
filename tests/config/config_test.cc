#include <catch2/catch.hpp>

#include <cstdio>
#include <fstream>

#include <unistd.h>

#include "config/config.h"

using coordd::config::parseCommandLine;

namespace {
std::string writeTemp(const std::string& text) {
  char path[] = "/tmp/coordd-config-XXXXXX";
  int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  ::close(fd);
  std::ofstream(path) << text;
  return path;
}
}  // namespace

TEST_CASE("the documented example configuration is valid", "[config]") {
  auto parsed = parseCommandLine({"--config", COORDD_EXAMPLE_CONFIG});
  REQUIRE(parsed.ok());
  CHECK(parsed->config.listen == std::vector<std::string>{"unix:/tmp/coordd.sock"});
}

TEST_CASE("flags override the file - the first list flag replaces the file's list", "[config]") {
  auto file = writeTemp("listen: [\"unix:/tmp/a.sock\"]\nlog_format: json\nlimits:\n  max_sessions: 7\n");
  auto parsed = parseCommandLine(
      {"--config", file, "--log-format=text", "--listen", "unix:/tmp/c.sock", "--listen", "unix:/tmp/b.sock"});
  REQUIRE(parsed.ok());
  CHECK(parsed->config.log_format == "text");
  CHECK(parsed->config.limits.max_sessions == 7);
  CHECK(parsed->config.listen == std::vector<std::string>{"unix:/tmp/c.sock", "unix:/tmp/b.sock"});
  std::remove(file.c_str());
}

TEST_CASE("unknown keys and bad values are rejected naming the key", "[config]") {
  auto unknown = writeTemp("limits:\n  max_sesions: 5\n");
  auto parsed = parseCommandLine({"--config", unknown});
  REQUIRE_FALSE(parsed.ok());
  CHECK(parsed.status().message().find("limits.max_sesions") != absl::string_view::npos);
  CHECK(parsed.status().message().find("unknown key") != absl::string_view::npos);

  auto bad = writeTemp("shutdown_timeout: soon\n");
  parsed = parseCommandLine({"--config", bad});
  REQUIRE_FALSE(parsed.ok());
  CHECK(parsed.status().message().find("shutdown_timeout") != absl::string_view::npos);

  parsed = parseCommandLine({"--max-sessions", "-3"});
  REQUIRE_FALSE(parsed.ok());
  CHECK(parsed.status().message().find("--max-sessions") != absl::string_view::npos);
  parsed = parseCommandLine({"--bogus", "1"});
  REQUIRE_FALSE(parsed.ok());
  CHECK(parsed.status().message().find("--bogus") != absl::string_view::npos);
  parsed = parseCommandLine({"--listen", "nowhere"});
  REQUIRE_FALSE(parsed.ok());
  CHECK(parsed.status().message().find("--listen") != absl::string_view::npos);
  std::remove(unknown.c_str());
  std::remove(bad.c_str());
}

TEST_CASE("ZooKeeper options - the creator ACL needs credentials and bad ensembles are refused", "[config]") {
  auto parsed = parseCommandLine({"--zookeeper", "zk1:2181,zk2:2181/replicante", "--zookeeper-acl", "creator"});
  REQUIRE_FALSE(parsed.ok());
  CHECK(parsed.status().message().find("zookeeper.auth") != absl::string_view::npos);
  parsed = parseCommandLine({"--zookeeper", "/replicante"});
  REQUIRE_FALSE(parsed.ok());
  CHECK(parsed.status().message().find("--zookeeper") != absl::string_view::npos);
  parsed = parseCommandLine({"--zookeeper", "zk1:2181/replicante", "--session-timeout", "500ms"});
  REQUIRE_FALSE(parsed.ok());
  CHECK(parsed.status().message().find("--session-timeout") != absl::string_view::npos);
  parsed = parseCommandLine({"--zookeeper", "zk1:2181/r", "--zookeeper-auth", "u:p", "--zookeeper-acl", "creator",
                             "--session-timeout", "4s"});
  REQUIRE(parsed.ok());
  CHECK(parsed->config.zookeeper == "zk1:2181/r");
  CHECK(parsed->config.session_timeout == absl::Seconds(4));
}

TEST_CASE("access settings - users and groups by name or number - TCP only with TLS", "[config]") {
  auto parsed = parseCommandLine({"--allow-uid", "root", "--allow-uid", "1000", "--admin-gid", "0"});
  REQUIRE(parsed.ok());
  CHECK(parsed->config.api_uids == std::vector<uid_t>{0, 1000});
  CHECK(parsed->config.admin_gids == std::vector<gid_t>{0});

  parsed = parseCommandLine({"--allow-uid", "no-such-user-here"});
  REQUIRE_FALSE(parsed.ok());
  CHECK(parsed.status().message().find("--allow-uid") != absl::string_view::npos);

  auto file = writeTemp("access:\n  admin_uids: [nobody-at-all]\n");
  parsed = parseCommandLine({"--config", file});
  REQUIRE_FALSE(parsed.ok());
  CHECK(parsed.status().message().find("access.admin_uids") != absl::string_view::npos);
  std::remove(file.c_str());

  parsed = parseCommandLine({"--listen", "127.0.0.1:7000"});
  REQUIRE_FALSE(parsed.ok());
  CHECK(parsed.status().message().find("tls.cert") != absl::string_view::npos);
  parsed = parseCommandLine({"--listen", "127.0.0.1:7000", "--tls-cert", "/nonexistent/cert.pem"});
  REQUIRE_FALSE(parsed.ok());
  CHECK(parsed.status().message().find("--tls-cert") != absl::string_view::npos);
}
