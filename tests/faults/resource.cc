#include "resource.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <stdexcept>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "harness.h"

namespace coordd::faults {
namespace {

// "client resource token believed fenced sent_us"
bool parse(const std::string& text, Write& write) {
  std::vector<std::string> f = absl::StrSplit(text, ' ');
  int believed = 0;
  int fenced = 0;
  if (f.size() != 6 || !absl::SimpleAtoi(f[0], &write.client) || !absl::SimpleAtoi(f[2], &write.token) ||
      !absl::SimpleAtoi(f[3], &believed) || !absl::SimpleAtoi(f[4], &fenced) ||
      !absl::SimpleAtoi(f[5], &write.sent_us)) {
    return false;
  }
  write.resource = f[1];
  write.believed = believed != 0;
  write.fenced = fenced != 0;
  return true;
}

}  // namespace

FencedResource::FencedResource(std::string socket_path) : path_(std::move(socket_path)) {
  fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr = e2e::unixAddress(path_);
  ::unlink(path_.c_str());
  if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    throw std::runtime_error("cannot bind the fenced resource at " + path_ + ": " + std::strerror(errno));
  }
  timeval timeout{0, 100000};
  ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  thread_ = std::thread([this] { serve(); });
}

FencedResource::~FencedResource() {
  stopping_ = true;
  thread_.join();
  ::close(fd_);
  ::unlink(path_.c_str());
}

std::vector<Write> FencedResource::writes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return writes_;
}

void FencedResource::serve() {
  char buffer[512];
  while (!stopping_) {
    ssize_t n = ::recv(fd_, buffer, sizeof(buffer), 0);
    if (n <= 0) continue;  // timeout: look at stopping_ again
    Write write;
    if (!parse(std::string(buffer, static_cast<size_t>(n)), write)) continue;
    write.at_us = e2e::monotonicMicros();
    std::lock_guard<std::mutex> lock(mu_);
    int64_t& highest = highest_[write.resource];
    write.accepted = !write.fenced || write.token >= highest;
    if (write.accepted && write.token > highest) highest = write.token;
    writes_.push_back(std::move(write));
  }
}

ResourceWriter::ResourceWriter(std::string socket_path, int client) : path_(std::move(socket_path)), client_(client) {
  fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
}

ResourceWriter::~ResourceWriter() { ::close(fd_); }

void ResourceWriter::write(const std::string& resource, int64_t token, bool believed, bool fenced) {
  const std::string text = absl::StrCat(client_, " ", resource, " ", token, " ", believed ? 1 : 0, " ", fenced ? 1 : 0,
                                        " ", e2e::monotonicMicros());
  sockaddr_un addr = e2e::unixAddress(path_);
  ::sendto(fd_, text.data(), text.size(), 0, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
}

}  // namespace coordd::faults
