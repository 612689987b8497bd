#include "backend/keeper/faulty_keeper.h"

namespace coordd::backend::keeper {

FaultyKeeper::FaultyKeeper(std::unique_ptr<Keeper> inner, Post post, Policy policy, std::function<void()> lost,
                           Observer observer)
    : inner_(std::move(inner)),
      post_(std::move(post)),
      policy_(std::move(policy)),
      lost_(std::move(lost)),
      observer_(std::make_shared<const Observer>(std::move(observer))) {}

void FaultyKeeper::call(const std::string& op, const std::string& path, Done done, Watch* watch,
                        const std::function<void(Done)>& issue) {
  lose(policy_(op, path), std::move(done), watch, issue);
}

void FaultyKeeper::lose(Fault fault, Done done, Watch* watch, const std::function<void(Done)>& issue) {
  if (fault == Fault::kNone) return issue(std::move(done));
  if (watch != nullptr) *watch = nullptr;
  Result lost;
  lost.code = Code::kConnectionLoss;
  if (fault == Fault::kLoseBeforeApplied) {
    post_([done = std::move(done), lost] { done(lost); });
  } else {
    issue([done = std::move(done), lost](const Result&) { done(lost); });
  }
  if (lost_) lost_();
}

Keeper::Done FaultyKeeper::observed(const std::string& op, const std::string& path, Done done) {
  if (!*observer_) return done;
  // The session may be closed before its answers run: they keep the observer.
  return [observer = observer_, op, path, done = std::move(done)](const Result& r) {
    (*observer)(op, path, r);
    done(r);
  };
}

void FaultyKeeper::create(const std::string& path, const std::string& data, CreateMode mode, Done done) {
  call("create", path, observed("create", path, std::move(done)), nullptr,
       [&](Done d) { inner_->create(path, data, mode, std::move(d)); });
}

void FaultyKeeper::get(const std::string& path, Done done) {
  call("get", path, observed("get", path, std::move(done)), nullptr, [&](Done d) { inner_->get(path, std::move(d)); });
}

void FaultyKeeper::exists(const std::string& path, Watch watch, Done done) {
  call("exists", path, observed("exists", path, std::move(done)), &watch,
       [&](Done d) { inner_->exists(path, std::move(watch), std::move(d)); });
}

void FaultyKeeper::children(const std::string& path, Watch watch, Done done) {
  call("children", path, observed("children", path, std::move(done)), &watch,
       [&](Done d) { inner_->children(path, std::move(watch), std::move(d)); });
}

void FaultyKeeper::remove(const std::string& path, int32_t version, Done done) {
  call("delete", path, observed("delete", path, std::move(done)), nullptr,
       [&](Done d) { inner_->remove(path, version, std::move(d)); });
}

void FaultyKeeper::sync(const std::string& path, Done done) {
  call("sync", path, observed("sync", path, std::move(done)), nullptr,
       [&](Done d) { inner_->sync(path, std::move(d)); });
}

void FaultyKeeper::multi(std::vector<Op> ops, Done done) {
  // The policy is asked of each op, as if it went alone; the first fault
  // chosen is the transaction's.
  Fault fault = Fault::kNone;
  for (auto op = ops.begin(); op != ops.end() && fault == Fault::kNone; ++op) {
    const char* name = op->type == Op::Type::kCreate ? "create" : op->type == Op::Type::kDelete ? "delete" : "set";
    fault = policy_(name, op->path);
  }
  const std::string path = ops.empty() ? "" : ops.front().path;
  lose(fault, observed("multi", path, std::move(done)), nullptr,
       [&](Done d) { inner_->multi(std::move(ops), std::move(d)); });
}

}  // namespace coordd::backend::keeper
