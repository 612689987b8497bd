#include "etcd.h"

#include <csignal>
#include <iostream>
#include <stdexcept>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "stats.h"
#include "zookeeper.h"  // freePort()

namespace coordd::bench {
namespace {

using namespace std::chrono_literals;

constexpr char kEtcdBin[] = "/usr/bin/etcd";
constexpr char kHolderFlag[] = "--etcd-holder";
// The holder's lease in the failover trials: etcd's smallest with default
// settings (it raises shorter ones to 1.5 election timeouts).
constexpr int64_t kHolderTtlSeconds = 2;
// The cycling clients' leases outlive any run; they are revoked at the end.
constexpr int64_t kClientTtlSeconds = 3600;

void withDeadline(grpc::ClientContext& context, std::chrono::milliseconds timeout) {
  context.set_deadline(std::chrono::system_clock::now() + timeout);
}

absl::Status toStatus(const grpc::Status& status, const std::string& what) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      absl::StrCat(what, ": ", status.error_message()));
}

absl::StatusOr<int64_t> grantLease(etcdserverpb::Lease::Stub& leases, int64_t ttl_seconds,
                                   std::chrono::milliseconds timeout = 10s) {
  grpc::ClientContext context;
  withDeadline(context, timeout);
  etcdserverpb::LeaseGrantRequest request;
  request.set_ttl(ttl_seconds);
  etcdserverpb::LeaseGrantResponse response;
  absl::Status status = toStatus(leases.LeaseGrant(&context, request, &response), "LeaseGrant");
  if (!status.ok()) return status;
  if (!response.error().empty()) return absl::UnavailableError("LeaseGrant: " + response.error());
  return response.id();
}

void revokeLease(etcdserverpb::Lease::Stub& leases, int64_t id) {
  grpc::ClientContext context;
  withDeadline(context, 5s);
  etcdserverpb::LeaseRevokeRequest request;
  request.set_id(id);
  etcdserverpb::LeaseRevokeResponse response;
  leases.LeaseRevoke(&context, request, &response);  // best effort: the lease expires anyway
}

// etcd's Lock blocks until acquired: `timeout` bounds the wait. (Not named
// lock(): argument-dependent lookup would find std::lock.)
absl::StatusOr<std::string> acquire(v3lockpb::Lock::Stub& locks, const std::string& name, int64_t lease,
                                    std::chrono::milliseconds timeout = 10s) {
  grpc::ClientContext context;
  withDeadline(context, timeout);
  v3lockpb::LockRequest request;
  request.set_name(name);
  request.set_lease(lease);
  v3lockpb::LockResponse response;
  absl::Status status = toStatus(locks.Lock(&context, request, &response), "Lock " + name);
  if (!status.ok()) return status;
  return response.key();
}

absl::Status release(v3lockpb::Lock::Stub& locks, const std::string& key) {
  grpc::ClientContext context;
  withDeadline(context, 10s);
  v3lockpb::UnlockRequest request;
  request.set_key(key);
  v3lockpb::UnlockResponse response;
  return toStatus(locks.Unlock(&context, request, &response), "Unlock");
}

std::shared_ptr<grpc::Channel> channelTo(const std::string& endpoint) {
  return grpc::CreateChannel(endpoint, grpc::InsecureChannelCredentials());
}

// Holds `name` until killed, keeping its lease alive as clientv3 does.
int runHolder(const std::string& endpoint, const std::string& name) {
  auto channel = channelTo(endpoint);
  auto leases = etcdserverpb::Lease::NewStub(channel);
  auto locks = v3lockpb::Lock::NewStub(channel);
  absl::StatusOr<int64_t> lease = grantLease(*leases, kHolderTtlSeconds);
  if (!lease.ok()) {
    std::cerr << lease.status() << std::endl;
    return 1;
  }
  grpc::ClientContext keepalive_context;
  auto keepalive = leases->LeaseKeepAlive(&keepalive_context);
  absl::StatusOr<std::string> key = acquire(*locks, name, *lease);
  if (!key.ok()) {
    std::cerr << key.status() << std::endl;
    return 1;
  }
  std::cout << "locked " << *key << std::endl;
  etcdserverpb::LeaseKeepAliveRequest ping;
  ping.set_id(*lease);
  etcdserverpb::LeaseKeepAliveResponse pong;
  while (keepalive->Write(ping) && keepalive->Read(&pong)) {
    std::this_thread::sleep_for(std::chrono::seconds(kHolderTtlSeconds) / 3);
  }
  std::cerr << "keepalive stream ended" << std::endl;
  return 1;
}

}  // namespace

EtcdServer::EtcdServer() {
  const int client_port = e2e::freePort();
  const int peer_port = e2e::freePort();
  const std::string client_url = absl::StrCat("http://127.0.0.1:", client_port);
  const std::string peer_url = absl::StrCat("http://127.0.0.1:", peer_port);
  endpoint_ = absl::StrCat("127.0.0.1:", client_port);
  process_ = std::make_unique<e2e::Process>(
      std::vector<std::string>{kEtcdBin, "--name", "bench", "--data-dir", dir_.file("data"), "--listen-client-urls",
                               client_url, "--advertise-client-urls", client_url, "--listen-peer-urls", peer_url,
                               "--initial-advertise-peer-urls", peer_url, "--initial-cluster", "bench=" + peer_url},
      std::map<std::string, std::string>{}, dir_.file("etcd"));
  auto leases = etcdserverpb::Lease::NewStub(channelTo(endpoint_));
  const bool up = e2e::eventually(
      [&] {
        if (!process_->running()) return true;
        absl::StatusOr<int64_t> lease = grantLease(*leases, 5, 500ms);
        if (lease.ok()) revokeLease(*leases, *lease);
        return lease.ok();
      },
      30s);
  if (!up || !process_->running()) throw std::runtime_error("etcd did not start:\n" + process_->err());
}

EtcdServer::~EtcdServer() {
  process_->signal(SIGTERM);
  if (!process_->wait(10s)) process_->signal(SIGKILL);
}

std::string EtcdServer::version() {
  e2e::TempDir dir;
  e2e::Process etcd({kEtcdBin, "--version"}, {}, dir.file("version"));
  etcd.wait(10s);
  const std::string out = etcd.out();  // "etcd Version: 3.4.23\nGit SHA: ..."
  return std::string(absl::StripPrefix(out.substr(0, out.find('\n')), "etcd Version: "));
}

EtcdLockDriver::EtcdLockDriver(const std::string& endpoint)
    : channel_(channelTo(endpoint)),
      leases_(etcdserverpb::Lease::NewStub(channel_)),
      kv_(etcdserverpb::KV::NewStub(channel_)),
      locks_(v3lockpb::Lock::NewStub(channel_)) {}

EtcdLockDriver::~EtcdLockDriver() {
  for (int64_t id : lease_ids_) revokeLease(*leases_, id);
}

void EtcdLockDriver::prepare(int clients) {
  for (int k = static_cast<int>(lease_ids_.size()); k < clients; ++k) {
    absl::StatusOr<int64_t> lease = grantLease(*leases_, kClientTtlSeconds);
    if (!lease.ok()) throw std::runtime_error(lease.status().ToString());
    lease_ids_.push_back(*lease);
    names_.push_back(absl::StrCat("bench-cycle-", k));
  }
}

absl::Status EtcdLockDriver::cycle(int client) {
  const auto k = static_cast<size_t>(client);
  absl::StatusOr<std::string> key = acquire(*locks_, names_[k], lease_ids_[k]);
  if (!key.ok()) return key.status();
  return release(*locks_, *key);
}

absl::StatusOr<bool> EtcdLockDriver::attempt(int client, int lock) {
  const std::string key = absl::StrCat("bench-contended-", lock);
  const auto compareCreated = [&](int64_t revision) {
    etcdserverpb::Compare compare;
    compare.set_result(etcdserverpb::Compare::EQUAL);
    compare.set_target(etcdserverpb::Compare::CREATE);
    compare.set_key(key);
    compare.set_create_revision(revision);
    return compare;
  };
  etcdserverpb::TxnRequest take;
  *take.add_compare() = compareCreated(0);
  etcdserverpb::PutRequest* put = take.add_success()->mutable_request_put();
  put->set_key(key);
  put->set_lease(lease_ids_[static_cast<size_t>(client)]);
  etcdserverpb::TxnResponse taken;
  {
    grpc::ClientContext context;
    withDeadline(context, 10s);
    absl::Status status = toStatus(kv_->Txn(&context, take, &taken), "Txn (take " + key + ")");
    if (!status.ok()) return status;
  }
  if (!taken.succeeded()) return false;
  etcdserverpb::TxnRequest give_back;
  *give_back.add_compare() = compareCreated(taken.header().revision());
  give_back.add_success()->mutable_request_delete_range()->set_key(key);
  etcdserverpb::TxnResponse given_back;
  grpc::ClientContext context;
  withDeadline(context, 10s);
  absl::Status status = toStatus(kv_->Txn(&context, give_back, &given_back), "Txn (give back " + key + ")");
  if (!status.ok()) return status;
  if (!given_back.succeeded()) return absl::InternalError(key + ": taken, then not ours when given back");
  return true;
}

std::vector<double> measureEtcdFailover(const std::string& endpoint, int trials) {
  auto channel = channelTo(endpoint);
  auto leases = etcdserverpb::Lease::NewStub(channel);
  auto locks = v3lockpb::Lock::NewStub(channel);
  e2e::TempDir dir;
  std::vector<double> samples;
  for (int trial = 0; trial < trials; ++trial) {
    const std::string name = absl::StrCat("bench-failover-", trial);
    e2e::Process holder({e2e::selfPath(), kHolderFlag, endpoint, name}, {}, dir.file(absl::StrCat("holder-", trial)));
    if (!e2e::eventually([&] { return !holder.running() || holder.out().find("locked") != std::string::npos; }, 10s) ||
        !holder.running()) {
      throw std::runtime_error("etcd lock holder did not lock:\n" + holder.err());
    }
    absl::StatusOr<int64_t> lease = grantLease(*leases, 60);
    if (!lease.ok()) throw std::runtime_error(lease.status().ToString());
    absl::StatusOr<std::string> key;
    Clock::time_point acquired_at;
    std::thread waiter([&] {
      key = acquire(*locks, name, *lease, 30s);
      acquired_at = Clock::now();
    });
    // The waiter's key must be in etcd before the kill, so that only the
    // takeover is timed; its Lock call gets there within milliseconds, and
    // etcd offers no call to see it queued without the KV service.
    std::this_thread::sleep_for(200ms);
    const Clock::time_point killed_at = Clock::now();
    holder.signal(SIGKILL);
    waiter.join();
    if (!key.ok()) throw std::runtime_error("etcd failover: " + key.status().ToString());
    samples.push_back(micros(killed_at, acquired_at));
    revokeLease(*leases, *lease);  // deletes the waiter's key too
  }
  return samples;
}

std::optional<int> runEtcdHolderIfAsked(int argc, char** argv) {
  if (argc != 4 || std::string(argv[1]) != kHolderFlag) return std::nullopt;
  return runHolder(argv[2], argv[3]);
}

}  // namespace coordd::bench
