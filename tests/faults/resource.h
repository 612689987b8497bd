#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace coordd::faults {

// One write to the fenced resource, as the resource recorded it.
struct Write {
  int client = 0;         // the writer's slot
  std::string resource;   // "lock/alpha", "election/svc-a"
  int64_t token = 0;      // fencing token or term
  bool believed = false;  // the library's held()/isPrimary() when writing
  bool fenced = true;     // false: the unsafe client's write, taken unchecked
  int64_t sent_us = 0;    // the writer's clock when it decided to write
  int64_t at_us = 0;      // when the resource got it
  bool accepted = false;
};

// The resource the contending clients act on: a small server on a Unix
// datagram socket. A fenced write is accepted only with a token at least the
// highest accepted so far for its resource; every write is recorded, in the
// order the resource saw them.
class FencedResource {
 public:
  explicit FencedResource(std::string socket_path);
  ~FencedResource();
  FencedResource(const FencedResource&) = delete;
  FencedResource& operator=(const FencedResource&) = delete;

  const std::string& path() const { return path_; }
  std::vector<Write> writes() const;

 private:
  void serve();

  const std::string path_;
  int fd_ = -1;
  std::atomic<bool> stopping_{false};
  mutable std::mutex mu_;
  std::vector<Write> writes_;
  std::map<std::string, int64_t> highest_;
  std::thread thread_;
};

// The client side: sends writes to the resource.
class ResourceWriter {
 public:
  ResourceWriter(std::string socket_path, int client);
  ~ResourceWriter();
  ResourceWriter(const ResourceWriter&) = delete;
  ResourceWriter& operator=(const ResourceWriter&) = delete;

  void write(const std::string& resource, int64_t token, bool believed, bool fenced);

 private:
  const std::string path_;
  const int client_;
  int fd_ = -1;
};

}  // namespace coordd::faults
