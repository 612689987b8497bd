#include "zookeeper.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace coordd::e2e {
namespace {

constexpr char kZkServer[] = "/usr/share/zookeeper/bin/zkServer.sh";

}  // namespace

int freePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd);
    throw std::runtime_error("no free port");
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

std::string fourLetter(int port, const std::string& command) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval timeout{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  std::string answer;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      ::write(fd, command.data(), command.size()) == static_cast<ssize_t>(command.size())) {
    char buffer[4096];
    ssize_t n;
    while ((n = ::read(fd, buffer, sizeof(buffer))) > 0) answer.append(buffer, static_cast<size_t>(n));
  }
  ::close(fd);
  return answer;
}

ZooKeeper::ZooKeeper() : ZooKeeper(0, "", freePort()) { start(); }

ZooKeeper::ZooKeeper(int id, std::string servers_config, int client_port, bool all_interfaces)
    : id_(id), servers_config_(std::move(servers_config)), client_port_(client_port), all_interfaces_(all_interfaces) {
  writeConfig();
}

std::vector<std::unique_ptr<ZooKeeper>> ZooKeeper::ensemble(int size, bool all_interfaces) {
  std::vector<int> client_ports;
  std::string servers;
  for (int id = 1; id <= size; ++id) {
    client_ports.push_back(freePort());
    absl::StrAppend(&servers, "server.", id, "=127.0.0.1:", freePort(), ":", freePort(), "\n");
  }
  std::vector<std::unique_ptr<ZooKeeper>> members;
  for (int id = 1; id <= size; ++id) {
    members.emplace_back(new ZooKeeper(id, servers, client_ports[static_cast<size_t>(id - 1)], all_interfaces));
  }
  startTogether(members);
  return members;
}

void ZooKeeper::startTogether(const std::vector<std::unique_ptr<ZooKeeper>>& members) {
  for (auto& member : members) {
    if (!member->running()) member->spawn();
  }
  for (auto& member : members) {
    if (!eventually([&] { return !member->mode().empty(); }, 60s)) {
      throw std::runtime_error("ZooKeeper ensemble did not form:\n" + readFile(member->dir_.file("server.out")));
    }
  }
}

void ZooKeeper::spawn() {
  process_ =
      std::make_unique<Process>(std::vector<std::string>{kZkServer, "start-foreground", dir_.file("zoo.cfg")},
                                std::map<std::string, std::string>{{"ZOO_LOG_DIR", dir_.path()}}, dir_.file("server"));
}

ZooKeeper::~ZooKeeper() {
  if (process_) kill();
}

void ZooKeeper::writeConfig() {
  std::ofstream(dir_.file("zoo.cfg")) << "tickTime=100\n"
                                      << "initLimit=50\nsyncLimit=20\n"
                                      << "minSessionTimeout=200\nmaxSessionTimeout=30000\n"
                                      << "dataDir=" << dir_.file("data") << "\n"
                                      << "clientPort=" << client_port_ << "\n"
                                      << "clientPortAddress=" << (all_interfaces_ ? "0.0.0.0" : "127.0.0.1") << "\n"
                                      << "admin.enableServer=false\n"
                                      << "4lw.commands.whitelist=*\n"
                                      << servers_config_;
  std::filesystem::create_directories(dir_.file("data"));
  if (id_ != 0) std::ofstream(dir_.file("data/myid")) << id_ << "\n";
}

void ZooKeeper::start() {
  spawn();
  if (!eventually([&] { return !mode().empty(); }, 60s)) {
    throw std::runtime_error("ZooKeeper did not start:\n" + readFile(dir_.file("server.out")));
  }
}

void ZooKeeper::kill() {
  process_->signalGroup(SIGKILL);
  process_->wait(10s);
  process_.reset();
}

void ZooKeeper::signal(int signo) {
  if (process_) process_->signalGroup(signo);
}

bool ZooKeeper::running() { return process_ && process_->running(); }

std::string ZooKeeper::mode() const {
  std::string answer = fourLetter(client_port_, "srvr");
  size_t at = answer.find("Mode: ");
  if (at == std::string::npos) return "";
  return answer.substr(at + 6, answer.find('\n', at) - at - 6);
}

std::string ZooKeeper::address() const { return absl::StrCat("127.0.0.1:", client_port_); }

std::string ZooKeeper::connectString(const std::vector<std::unique_ptr<ZooKeeper>>& servers,
                                     const std::string& chroot) {
  std::vector<std::string> addresses;
  for (const auto& server : servers) addresses.push_back(server->address());
  return absl::StrCat(absl::StrJoin(addresses, ","), chroot);
}

}  // namespace coordd::e2e
