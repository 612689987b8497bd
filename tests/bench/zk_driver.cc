#include "zk_driver.h"

#include <chrono>
#include <stdexcept>

#include "absl/strings/str_cat.h"

namespace coordd::bench {
namespace {

constexpr char kParent[] = "/bench-zk-direct";

absl::Status zkError(int rc, const std::string& what) {
  return absl::UnavailableError(absl::StrCat(what, ": ", zerror(rc)));
}

}  // namespace

void ZkDirectLockDriver::onEvent(zhandle_t*, int type, int state, const char*, void* context) {
  if (type != ZOO_SESSION_EVENT) return;
  auto* self = static_cast<ZkDirectLockDriver*>(context);
  std::lock_guard<std::mutex> lock(self->mu_);
  self->state_ = state;
  self->changed_.notify_all();
}

ZkDirectLockDriver::ZkDirectLockDriver(const std::string& address) {
  zoo_set_debug_level(ZOO_LOG_LEVEL_ERROR);
  zh_ = zookeeper_init(address.c_str(), &ZkDirectLockDriver::onEvent, 10000, nullptr, this, 0);
  if (zh_ == nullptr) throw std::runtime_error("zookeeper_init failed for " + address);
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (!changed_.wait_for(lock, std::chrono::seconds(10), [&] { return state_ == ZOO_CONNECTED_STATE; })) {
      throw std::runtime_error("no ZooKeeper session with " + address);
    }
  }
  const int rc = zoo_create(zh_, kParent, "", 0, &ZOO_OPEN_ACL_UNSAFE, 0, nullptr, 0);
  if (rc != ZOK && rc != ZNODEEXISTS) throw std::runtime_error(zkError(rc, kParent).ToString());
  // coordd's lock node holds {"name", "owner": {"id", "extra": {session,
  // owner label}}}: about this many bytes.
  payload_ = std::string(160, 'x');
}

ZkDirectLockDriver::~ZkDirectLockDriver() {
  if (zh_ != nullptr) zookeeper_close(zh_);
}

void ZkDirectLockDriver::prepare(int clients) {
  for (int k = static_cast<int>(paths_.size()); k < clients; ++k) {
    paths_.push_back(absl::StrCat(kParent, "/bench-cycle-", k));
  }
}

absl::Status ZkDirectLockDriver::cycle(int client) {
  const std::string& path = paths_[static_cast<size_t>(client)];
  int rc = zoo_create(zh_, path.c_str(), payload_.data(), static_cast<int>(payload_.size()), &ZOO_OPEN_ACL_UNSAFE,
                      ZOO_EPHEMERAL, nullptr, 0);
  if (rc != ZOK) return zkError(rc, "create " + path);
  rc = zoo_delete(zh_, path.c_str(), -1);
  if (rc != ZOK) return zkError(rc, "delete " + path);
  return absl::OkStatus();
}

absl::StatusOr<bool> ZkDirectLockDriver::attempt(int, int lock) {
  const std::string path = absl::StrCat(kParent, "/bench-contended-", lock);
  int rc = zoo_create(zh_, path.c_str(), payload_.data(), static_cast<int>(payload_.size()), &ZOO_OPEN_ACL_UNSAFE,
                      ZOO_EPHEMERAL, nullptr, 0);
  if (rc == ZNODEEXISTS) return false;
  if (rc != ZOK) return zkError(rc, "create " + path);
  // All clients share the session: only the one that created it deletes it.
  rc = zoo_delete(zh_, path.c_str(), -1);
  if (rc != ZOK) return zkError(rc, "delete " + path);
  return true;
}

}  // namespace coordd::bench
