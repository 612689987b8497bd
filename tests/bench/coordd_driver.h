#pragma once

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <vector>

#include "coordd/client.h"
#include "lock_driver.h"

namespace coordd::bench {

// Lock cycles through coordd with its C++ client library: Session::tryLock
// (Locks.TryAcquire) and LockGuard::release (Locks.Release).
//
// NOTE: every client has its own session, as separate processes would, but
// all sessions share one coordd::Client, i.e. one gRPC channel (one
// connection to the socket), as the threads of one process would. etcd's
// driver does the same, and the ZooKeeper driver shares one ZooKeeper
// session, so every system gets one connection.
class CoorddLockDriver : public TryLockDriver {
 public:
  // `address`: the daemon's socket, "unix:/path".
  explicit CoorddLockDriver(const std::string& address);

  void prepare(int clients) override;
  absl::Status cycle(int client) override;
  absl::StatusOr<bool> attempt(int client, int lock) override;

 private:
  std::unique_ptr<Client> client_;
  std::vector<std::unique_ptr<Session>> sessions_;
  std::vector<std::string> names_;
};

// One grpc.health.v1.Health/Check at a time over a shared channel, the
// synchronous way (its own completion queue), with the library's deadline: a
// gRPC round trip to coordd in which coordd does nothing.
class HealthCall {
 public:
  explicit HealthCall(std::shared_ptr<grpc::Channel> channel);
  ~HealthCall();
  HealthCall(const HealthCall&) = delete;
  HealthCall& operator=(const HealthCall&) = delete;

  // True when answered OK.
  bool call();

 private:
  grpc::GenericStub stub_;
  grpc::CompletionQueue queue_;
};

// Not a lock: each cycle is two Health/Check calls on coordd's socket, the
// transport a coordd lock cycle (TryAcquire + Release) needs with none of
// its work. No sidecar reached over gRPC here can cycle faster than this
// column; it shows how much of coordd's gap to ZK direct is the hop itself.
class GrpcFloorDriver : public LockDriver {
 public:
  explicit GrpcFloorDriver(const std::string& address);

  void prepare(int clients) override;
  absl::Status cycle(int client) override;

 private:
  std::shared_ptr<grpc::Channel> channel_;  // one connection, as CoorddLockDriver
  std::vector<std::unique_ptr<HealthCall>> calls_;
};

}  // namespace coordd::bench
