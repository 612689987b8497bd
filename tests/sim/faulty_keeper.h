#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "backend/keeper/keeper.h"
#include "world.h"

namespace coordd::sim {

// How many faults of each kind a run injected.
using FaultCounts = std::map<std::string, int64_t>;

// A keeper session whose answers the world loses now and then (as
// ClickHouse's ZooKeeperWithFaultInjection does): before the server applied
// the request, or after. Either way the caller gets kConnectionLoss and the
// connection drops (`drop` is told the session), as it does when ZooKeeper's
// answers are lost; a watch set by a call whose answer was lost never fires.
class FaultyKeeper : public backend::keeper::Keeper {
 public:
  // `loss`: the share of answers lost, read at each call.
  // `on_call` hears of every call; `trace`, if set, of every create and
  // delete and its answer.
  FaultyKeeper(std::unique_ptr<Keeper> inner, Post post, World& world, const double& loss,
               std::function<void(int64_t session)> drop, FaultCounts& counts, std::function<void()> on_call,
               std::function<void(const std::string&)> trace);

  void create(const std::string& path, const std::string& data, backend::keeper::CreateMode mode, Done done) override;
  void get(const std::string& path, Done done) override;
  void exists(const std::string& path, Watch watch, Done done) override;
  void children(const std::string& path, Watch watch, Done done) override;
  void remove(const std::string& path, int32_t version, Done done) override;
  void sync(const std::string& path, Done done) override;
  int64_t sessionId() const override { return inner_->sessionId(); }
  int64_t negotiatedTimeoutMs() const override { return inner_->negotiatedTimeoutMs(); }
  std::string server() const override { return inner_->server(); }

 private:
  // Issues a call through `issue`, or loses its answer; `watch` is cleared
  // when the answer is lost.
  void call(Done done, Watch* watch, const std::function<void(Done)>& issue);

  const std::unique_ptr<Keeper> inner_;
  const Post post_;
  World& world_;
  const double& loss_;
  const std::function<void(int64_t)> drop_;
  FaultCounts& counts_;
  const std::function<void()> on_call_;
  const std::function<void(const std::string&)> trace_;
};

}  // namespace coordd::sim
