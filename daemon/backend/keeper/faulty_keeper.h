#pragma once

#include <functional>
#include <memory>
#include <string>

#include "backend/keeper/keeper.h"

namespace coordd::backend::keeper {

// A keeper session that loses answers where its policy says (as ClickHouse's
// ZooKeeperWithFaultInjection): before the server applied the request, or
// after. Either way the caller gets kConnectionLoss, as from ZooKeeper when
// the connection drops with the request in flight, and a watch set by a call
// whose answer was lost never fires. For the simulation and for tests.
class FaultyKeeper : public Keeper {
 public:
  enum class Fault { kNone, kLoseBeforeApplied, kLoseAfterApplied };
  // Chooses each call's fault. `op`: "create", "get", "exists", "children",
  // "delete", "sync"; a multi's ops ("create", "delete", "set") are asked of
  // one by one until one is struck, and that fault strikes the multi.
  using Policy = std::function<Fault(const std::string& op, const std::string& path)>;
  // Hears every answer just before its caller does ("multi" for a multi).
  using Observer = std::function<void(const std::string& op, const std::string& path, const Result& result)>;

  // `lost` is told, after a lost answer is on its way, so that the
  // connection can drop as it does on ZooKeeper.
  FaultyKeeper(std::unique_ptr<Keeper> inner, Post post, Policy policy, std::function<void()> lost = nullptr,
               Observer observer = nullptr);

  void create(const std::string& path, const std::string& data, CreateMode mode, Done done) override;
  void get(const std::string& path, Done done) override;
  void exists(const std::string& path, Watch watch, Done done) override;
  void children(const std::string& path, Watch watch, Done done) override;
  void remove(const std::string& path, int32_t version, Done done) override;
  void sync(const std::string& path, Done done) override;
  void multi(std::vector<Op> ops, Done done) override;
  int64_t sessionId() const override { return inner_->sessionId(); }
  int64_t negotiatedTimeoutMs() const override { return inner_->negotiatedTimeoutMs(); }
  std::string server() const override { return inner_->server(); }

 private:
  // Issues a call through `issue`, or loses its answer; `watch` is cleared
  // when the answer is lost.
  void call(const std::string& op, const std::string& path, Done done, Watch* watch,
            const std::function<void(Done)>& issue);
  void lose(Fault fault, Done done, Watch* watch, const std::function<void(Done)>& issue);
  Done observed(const std::string& op, const std::string& path, Done done);

  const std::unique_ptr<Keeper> inner_;
  const Post post_;
  const Policy policy_;
  const std::function<void()> lost_;
  const std::shared_ptr<const Observer> observer_;
};

}  // namespace coordd::backend::keeper
