#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "backend/keeper/keeper.h"

namespace coordd::backend::keeper {

// Group commit, as a database's log: the creates asked of a session while
// one of them is in flight go to the server together, as one multi, as soon
// as it is answered. There is no timer: what is asked while nothing is in
// flight goes at once, alone, so a lone caller waits for nothing more. The
// server then makes one request and one transaction of many callers' writes.
//
// A multi fails as a whole: the op that failed is answered with its code (a
// create with kNodeExists: the lock is held) and the others, which were not
// applied, go again at once, each alone, so one contended node costs the
// others one round trip at most and never fails them. A lost answer is every
// op's (kConnectionLoss). One multi holds at most one op per path, at most
// `max_batch` ops and about kMaxBatchBytes.
//
// Deletes are not batched: ZooKeeper deletes by version only, and a delete
// held back could meet another's node created meanwhile with that version.
// They, reads, syncs, sequential and container creates and multis go at
// once, unless they touch (the same path, an ancestor or a descendant) the
// multi in flight or a call queued before them: then after it. So the
// session's order holds wherever it shows.
//
// Every node a multi creates carries its zxid as czxid: the answers' stats
// are made from a set, added to the multi, on the first node it creates (so
// that node's version is 1, the others' 0).
class BatchingKeeper : public Keeper {
 public:
  BatchingKeeper(std::unique_ptr<Keeper> inner, Post post, size_t max_batch = 64);
  // What was asked and not sent is answered kClosing.
  ~BatchingKeeper() override;

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
  // Outlives the session: answers still to come after it closed find it.
  struct State;

  std::shared_ptr<State> state_;
  const std::unique_ptr<Keeper> inner_;  // after state_: closed first
};

}  // namespace coordd::backend::keeper
