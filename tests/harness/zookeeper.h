#pragma once

#include <memory>
#include <string>
#include <vector>

#include "harness.h"

namespace coordd::e2e {

// A real ZooKeeper server from Debian's package, on free loopback ports in a
// temporary directory, with a short tickTime so that sessions of a few
// seconds are allowed.
class ZooKeeper {
 public:
  // A standalone server.
  ZooKeeper();
  // `size` servers forming one ensemble, all started. With `all_interfaces`
  // they listen for clients on every address, not only loopback (clients in
  // another network namespace).
  static std::vector<std::unique_ptr<ZooKeeper>> ensemble(int size, bool all_interfaces = false);
  // Starts the members that are not running together (none serves before a
  // quorum is up) and waits until each serves.
  static void startTogether(const std::vector<std::unique_ptr<ZooKeeper>>& members);
  ~ZooKeeper();

  // Starts (again, on the same ports and data) and waits until it serves.
  void start();
  // kill -9 of the server.
  void kill();
  // A signal to the server's whole process group (SIGSTOP, SIGCONT).
  void signal(int signo);
  int clientPort() const { return client_port_; }
  bool running();
  // "leader", "follower" or "standalone"; empty when not serving.
  std::string mode() const;
  std::string address() const;

  // "127.0.0.1:p1,127.0.0.1:p2/chroot"
  static std::string connectString(const std::vector<std::unique_ptr<ZooKeeper>>& servers, const std::string& chroot);

 private:
  ZooKeeper(int id, std::string servers_config, int client_port, bool all_interfaces = false);
  void writeConfig();
  void spawn();

  TempDir dir_;
  int id_ = 0;
  std::string servers_config_;  // server.N lines; empty when standalone
  int client_port_ = 0;
  bool all_interfaces_ = false;
  std::unique_ptr<Process> process_;
};

// A free TCP port on 127.0.0.1, as the kernel hands out.
int freePort();

// Sends a four-letter command to 127.0.0.1:port; the answer, or "" on error.
std::string fourLetter(int port, const std::string& command);

}  // namespace coordd::e2e
