#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "etcd_rpc.grpc.pb.h"
#include "etcd_v3lock.grpc.pb.h"
#include "harness.h"
#include "lock_driver.h"

namespace coordd::bench {

// A single-member etcd from Debian's package (default settings: fsync on
// every commit, like the ZooKeeper server) on free loopback ports in a
// temporary directory.
class EtcdServer {
 public:
  // Starts etcd and waits until it grants a lease; throws if it does not
  // within 30 s.
  EtcdServer();
  ~EtcdServer();

  // "127.0.0.1:port", for gRPC.
  const std::string& endpoint() const { return endpoint_; }
  // The version `etcd --version` prints, e.g. "3.4.23".
  static std::string version();

 private:
  e2e::TempDir dir_;
  std::string endpoint_;
  std::unique_ptr<e2e::Process> process_;
};

// Lock cycles with etcd's lock service: v3lockpb.Lock, then Unlock of the
// key it returned, one lease per client (granted in prepare(), revoked at
// the end), as clientv3's concurrency.Mutex would hold one session per
// process.
//
// NOTE: all clients share one gRPC channel, as coordd's driver does.
//
// etcd's lock service has no try-lock (its Lock waits), so an attempt is
// the cheapest try-lock etcd allows, one key per lock: a Txn putting the key
// with the client's lease if it was never created; then, if that
// succeeded, a Txn deleting it while it is that very key (its
// create_revision). clientv3's Mutex.TryLock puts a key per lease and reads
// the owner, and deletes its key again when refused: more round trips.
class EtcdLockDriver : public TryLockDriver {
 public:
  explicit EtcdLockDriver(const std::string& endpoint);
  ~EtcdLockDriver() override;

  void prepare(int clients) override;
  absl::Status cycle(int client) override;
  absl::StatusOr<bool> attempt(int client, int lock) override;

 private:
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<etcdserverpb::Lease::Stub> leases_;
  std::unique_ptr<etcdserverpb::KV::Stub> kv_;
  std::unique_ptr<v3lockpb::Lock::Stub> locks_;
  std::vector<int64_t> lease_ids_;
  std::vector<std::string> names_;
};

// Failover of etcd's lock service: a holder process (this binary in its
// holder mode) holds lock `name` with a 2 s lease that it keeps alive like
// clientv3 (every TTL/3); a waiter here blocks in Lock; the holder is killed
// with SIGKILL. Each sample is the time from the kill until the waiter's
// Lock returns, in microseconds: the rest of the holder's lease plus etcd's
// expiry check, about 2 s, so a few trials suffice.
std::vector<double> measureEtcdFailover(const std::string& endpoint, int trials);

// The holder mode of this binary, for measureEtcdFailover. Returns its exit
// code when argv asks for it, nullopt otherwise.
std::optional<int> runEtcdHolderIfAsked(int argc, char** argv);

}  // namespace coordd::bench
