#pragma once

#include <fstream>
#include <string>
#include <vector>

#include "harness.h"

namespace coordd::e2e {

// An independent ZooKeeper client (kazoo, under Debian's python3) running
// short scripts that see `zk` (connected), `json`, `sys` and `sha(name)`.
class Kazoo {
 public:
  // `digest`: "user:password" to authenticate with, or empty.
  explicit Kazoo(std::string hosts, std::string digest = "") : hosts_(std::move(hosts)), digest_(std::move(digest)) {}

  // Returns the script's exit code; its stdout and stderr in `out`.
  int run(const std::string& script, const std::vector<std::string>& args, std::string* out) {
    const std::string path = dir_.file("script.py");
    std::ofstream(path) << "import json, hashlib, sys\nfrom kazoo.client import KazooClient\n"
                        << "zk = KazooClient(hosts='" << hosts_ << "'"
                        << (digest_.empty() ? "" : ", auth_data=[('digest', '" + digest_ + "')]") << ")\n"
                        << "zk.start(timeout=10)\n"
                        << "def sha(s): return hashlib.sha256(s.encode()).hexdigest()\n"
                        << script << "\nzk.stop()\n";
    std::vector<std::string> argv = {"/usr/bin/python3", path};
    argv.insert(argv.end(), args.begin(), args.end());
    Process python(argv, {}, dir_.file("python"));
    auto code = python.wait(30s);
    *out = python.out() + python.err();
    return code.value_or(-1);
  }

 private:
  std::string hosts_;
  std::string digest_;
  TempDir dir_;
};

}  // namespace coordd::e2e
