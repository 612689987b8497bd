// Who may talk to coordd: Unix socket peers by uid/gid (SO_PEERCRED), socket
// ownership, and TCP only over TLS, with mTLS when a client CA is set.
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "coordd/admin.h"
#include "coordd/client.h"
#include "harness.h"

using namespace coordd::e2e;

namespace {

// A CA, a server certificate for 127.0.0.1 and a client certificate, made
// with openssl now.
struct Certificates {
  Certificates() {
    const std::string d = dir.path();
    const std::string script = absl::StrCat(
        "set -e; cd ", d,
        "; openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=test-ca -keyout ca.key -out ca.pem",
        "; openssl req -newkey rsa:2048 -nodes -subj /CN=coordd -keyout server.key -out server.csr",
        "; printf 'subjectAltName=IP:127.0.0.1,DNS:localhost' > san.ext",
        "; openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 -extfile san.ext "
        "-out server.pem",
        "; openssl req -newkey rsa:2048 -nodes -subj /CN=client -keyout client.key -out client.csr",
        "; openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 -out client.pem",
        " ) >/dev/null 2>&1");
    ok = std::system(("( " + script).c_str()) == 0;
  }
  std::string file(const std::string& name) const { return dir.file(name); }

  TempDir dir;
  bool ok = false;
};

// "127.0.0.1:PORT" from the daemon's "listening on 127.0.0.1:PORT (TLS)".
std::string tcpAddress(const Daemon& daemon) {
  const std::string marker = "listening on 127.0.0.1:";
  std::string log;
  REQUIRE(eventually([&] {
    log = daemon.log();
    return log.find(marker) != std::string::npos;
  }));
  const size_t at = log.find(marker);
  const size_t start = at + 13;
  return log.substr(start, log.find(' ', start) - start);
}

absl::Status openSession(const std::string& address, const coordd::TlsOptions& tls) {
  auto client = coordd::Client::connect(address, tls);
  if (!client.ok()) return client.status();
  coordd::SessionOptions options;
  options.owner = "tls-client";
  auto session = (*client)->openSession(options);
  return session.status();
}

}  // namespace

TEST_CASE("TCP is off by default - served only over TLS - Admin over TCP needs admin.allowed_peers", "[e2e][access]") {
  Daemon unix_only;
  REQUIRE(eventually([&] { return unix_only.log().find("listening on unix:") != std::string::npos; }));
  CHECK(unix_only.log().find("listening on 127.0.0.1") == std::string::npos);
  Certificates certs;
  REQUIRE(certs.ok);

  for (bool admin_allowed : {false, true}) {
    std::vector<std::string> args = {"--listen",  "127.0.0.1:0",           "--tls-cert", certs.file("server.pem"),
                                     "--tls-key", certs.file("server.key")};
    if (admin_allowed) args.insert(args.end(), {"--admin-allow", "127.0.0.1"});
    Daemon daemon(args);
    const std::string tcp = tcpAddress(daemon);
    // Without TLS, or without trusting coordd's CA: no connection.
    auto plain = coordd::Client::connect(tcp, coordd::TlsOptions{certs.file("no-such-ca.pem"), "", ""});
    CHECK(absl::IsInvalidArgument(plain.status()));
    CHECK_FALSE(openSession(tcp, coordd::TlsOptions{certs.file("client.pem"), "", ""}).ok());  // not the CA
    // With the CA, any TLS client may use the API.
    CHECK(openSession(tcp, coordd::TlsOptions{certs.file("ca.pem"), "", ""}).ok());
    auto client = coordd::Client::connect(tcp, coordd::TlsOptions{certs.file("ca.pem"), "", ""}).value();
    auto status = client->admin().status();
    if (admin_allowed) {
      CHECK(status.ok());
    } else {
      CHECK(absl::IsPermissionDenied(status.status()));
      CHECK(status.status().message().find("admin.allowed_peers") != absl::string_view::npos);
    }
  }
}

TEST_CASE("TCP with a client CA - mTLS - a client without a certificate it signed is refused", "[e2e][access]") {
  Certificates certs;
  REQUIRE(certs.ok);
  Daemon daemon({"--listen", "127.0.0.1:0", "--tls-cert", certs.file("server.pem"), "--tls-key",
                 certs.file("server.key"), "--tls-client-ca", certs.file("ca.pem")});
  const std::string tcp = tcpAddress(daemon);
  CHECK_FALSE(openSession(tcp, coordd::TlsOptions{certs.file("ca.pem"), "", ""}).ok());
  // A certificate the CA did not sign: the server's own key pair is signed,
  // so use a fresh self-signed one.
  REQUIRE(std::system(("cd " + certs.dir.path() +
                       " && openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=stranger -keyout stranger.key "
                       "-out stranger.pem >/dev/null 2>&1")
                          .c_str()) == 0);
  CHECK_FALSE(
      openSession(tcp, coordd::TlsOptions{certs.file("ca.pem"), certs.file("stranger.pem"), certs.file("stranger.key")})
          .ok());
  CHECK(openSession(tcp, coordd::TlsOptions{certs.file("ca.pem"), certs.file("client.pem"), certs.file("client.key")})
            .ok());
}

TEST_CASE("Unix socket peers by uid - denied calls get PERMISSION_DENIED - the log names the peer's uid and pid",
          "[e2e][access]") {
  const uid_t me = geteuid();
  const uid_t other = me == 65534 ? 65533 : 65534;
  // `other` may use the API, only this user may use Admin.
  Daemon daemon({"--socket-mode", "0666", "--allow-uid", std::to_string(other), "--admin-uid", std::to_string(me)});
  ::chmod(daemon.dir().path().c_str(), 0755);  // so that `other` can reach the socket

  auto denied = daemon.coordctl({"lock", "job", "--", "true"});
  CHECK(denied.code == 1);
  CHECK(denied.err.find("PERMISSION_DENIED") != std::string::npos);
  CHECK(denied.err.find(absl::StrCat("uid ", me)) != std::string::npos);
  CHECK(eventually(
      [&] { return daemon.log().find(absl::StrCat("access denied: uid ", me, " pid ")) != std::string::npos; }));
  CHECK(daemon.coordctl({"status"}).code == 0);  // Admin

  if (me != 0) {
    WARN("not root: cannot run coordctl as another user; only the refusals were checked");
    return;
  }
  // The same commands as `other`.
  auto as_other = [&](std::vector<std::string> args) {
    std::vector<std::string> argv = {"/usr/bin/setpriv", "--reuid=" + std::to_string(other),
                                     "--regid=" + std::to_string(other), "--clear-groups", COORDCTL_BIN};
    argv.insert(argv.end(), args.begin(), args.end());
    Process process(argv, {{"COORDD_ADDRESS", daemon.address()}}, daemon.dir().file("as-other"));
    auto code = process.wait(10s);
    return std::make_pair(code.value_or(-1), process.err());
  };
  CHECK(as_other({"lock", "job", "--", "true"}).first == 0);
  auto admin = as_other({"status"});
  CHECK(admin.first == 1);
  CHECK(admin.second.find("PERMISSION_DENIED") != std::string::npos);
}

TEST_CASE("socket owner and group from config", "[e2e][access]") {
  if (geteuid() != 0) {
    WARN("not root: chown to another owner needs root; not checked");
    return;
  }
  Daemon daemon({"--socket-owner", "nobody", "--socket-group", "nogroup", "--socket-mode", "0600"});
  struct stat st {};
  REQUIRE(::stat(daemon.address().substr(5).c_str(), &st) == 0);
  CHECK(st.st_uid == 65534);
  CHECK(st.st_gid == 65534);
  CHECK((st.st_mode & 0777) == 0600);
}
