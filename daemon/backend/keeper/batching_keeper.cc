#include "backend/keeper/batching_keeper.h"

#include <algorithm>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <set>
#include <tuple>
#include <utility>
#include <variant>

#include "absl/base/thread_annotations.h"

namespace coordd::backend::keeper {
namespace {

// Well below ZooKeeper's default jute.maxbuffer (1 MiB), past which the
// server drops the connection.
constexpr size_t kMaxBatchBytes = 256 * 1024;
constexpr size_t kOpOverhead = 64;  // an op's headers, roughly

bool ephemeral(CreateMode mode) { return mode == CreateMode::kEphemeral || mode == CreateMode::kEphemeralSequential; }

}  // namespace

struct BatchingKeeper::State : std::enable_shared_from_this<State> {
  // A create that may share a multi.
  struct Write {
    Op op;
    Done done;
  };
  // A call that goes alone, once what was asked before it went.
  struct Alone {
    std::string path;
    std::function<void(Keeper* inner, Done done)> issue;
    Done done;
  };
  using Entry = std::variant<Write, Alone>;

  State(Keeper* inner, Post post, size_t max_batch) : inner(inner), post(std::move(post)), max_batch(max_batch) {}

  void write(Write w) {
    std::lock_guard<std::mutex> lock(mu);
    if (inner != nullptr && writes_in_flight == 0 && queue.empty()) return sendOne(std::move(w));
    queue.push_back(std::move(w));
  }

  // Goes now, unless it could see the multi in flight or something asked
  // before it and not sent yet: then after them.
  void alone(Alone a) {
    std::lock_guard<std::mutex> lock(mu);
    if (inner != nullptr && !waitsFor(a.path)) return a.issue(inner, std::move(a.done));
    queue.push_back(std::move(a));
    flush();
  }

  bool waitsFor(const std::string& path) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    if (inMulti(path)) return true;
    for (const auto& entry : queue) {
      if (related(path, std::visit([](const auto& e) -> const std::string& { return pathOf(e); }, entry))) return true;
    }
    return false;
  }
  static const std::string& pathOf(const Write& w) { return w.op.path; }
  static const std::string& pathOf(const Alone& a) { return a.path; }

  // Whether the multi in flight has an op on `path`, an ancestor or a
  // descendant of it: what a call on `path` could see of it. A call on
  // anything else sees the same whichever way the multi ends, and need not
  // wait for it.
  bool inMulti(const std::string& path) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    return std::any_of(multi_paths.begin(), multi_paths.end(),
                       [&](const std::string& op) { return related(op, path); });
  }
  // The same path, or one an ancestor of the other.
  static bool related(const std::string& a, const std::string& b) {
    const auto& [shorter, longer] = a.size() < b.size() ? std::tie(a, b) : std::tie(b, a);
    if (longer.compare(0, shorter.size(), shorter) != 0) return false;
    return longer.size() == shorter.size() || longer[shorter.size()] == '/' || shorter == "/";
  }

  // Sends what is queued, in order: writes as one multi at a time, calls
  // unless the multi in flight could change what they see.
  void flush() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    while (!queue.empty() && inner != nullptr) {
      if (auto* a = std::get_if<Alone>(&queue.front())) {
        if (inMulti(a->path)) return;
        Alone call = std::move(*a);
        queue.pop_front();
        call.issue(inner, std::move(call.done));
        continue;
      }
      if (multi_in_flight) return;  // the next multi waits for this one
      std::vector<Write> batch;
      std::set<std::string> paths;
      size_t bytes = 0;
      while (!queue.empty() && batch.size() < max_batch) {
        auto* w = std::get_if<Write>(&queue.front());
        if (w == nullptr) break;
        // A multi's first create goes in twice (its set).
        const size_t size = (w->op.path.size() + w->op.data.size() + kOpOverhead) * (batch.empty() ? 2 : 1);
        if (!batch.empty() && (bytes + size > kMaxBatchBytes || paths.count(w->op.path) > 0)) break;
        bytes += size;
        paths.insert(w->op.path);
        batch.push_back(std::move(*w));
        queue.pop_front();
      }
      if (batch.size() == 1) {
        sendOne(std::move(batch.front()));
      } else {
        sendMulti(std::move(batch));
      }
    }
  }

  // Alone: the plain call, whose answer has the node's stat.
  void sendOne(Write w) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    ++writes_in_flight;
    auto self = shared_from_this();
    const Op op = w.op;
    Done done = [self, done = std::move(w.done)](const Result& r) {
      {
        std::lock_guard<std::mutex> lock(self->mu);
        if (--self->writes_in_flight == 0) self->flush();
      }
      done(r);
    };
    inner->create(op.path, op.data, op.mode, std::move(done));
  }

  void sendMulti(std::vector<Write> batch) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    ++writes_in_flight;
    multi_in_flight = true;
    for (const auto& w : batch) multi_paths.push_back(w.op.path);
    std::vector<Op> ops;
    std::optional<size_t> first_create;
    for (size_t i = 0; i < batch.size(); ++i) {
      ops.push_back(batch[i].op);
      if (!first_create && batch[i].op.type == Op::Type::kCreate) first_create = i;
    }
    // The transaction's zxid, which the C client gives a set's answer only.
    if (first_create) ops.push_back(Op::set(batch[*first_create].op.path, batch[*first_create].op.data, 0));
    auto self = shared_from_this();
    auto shared = std::make_shared<std::vector<Write>>(std::move(batch));
    const int64_t session = inner->sessionId();
    inner->multi(std::move(ops), [self, shared, first_create, session](const Result& r) {
      self->answered(std::move(*shared), first_create, session, r);
    });
  }

  void answered(std::vector<Write> batch, std::optional<size_t> first_create, int64_t session, const Result& r) {
    std::vector<std::pair<Done, Result>> answers;
    auto answerAll = [&](Code code) {
      for (auto& w : batch) {
        Result result;
        result.code = code;
        answers.emplace_back(std::move(w.done), std::move(result));
      }
    };
    {
      std::lock_guard<std::mutex> lock(mu);
      --writes_in_flight;
      multi_in_flight = false;
      multi_paths.clear();
      const bool per_op = r.results.size() >= batch.size();
      size_t failed = 0;
      for (size_t i = 0; per_op && i < batch.size(); ++i) failed += r.results[i].code != Code::kNotApplied ? 1 : 0;
      if (r.code == Code::kOk && per_op) {
        for (size_t i = 0; i < batch.size(); ++i) {
          Result op = r.results[i];
          if (batch[i].op.type == Op::Type::kCreate && first_create) {
            op.stat = createdStat(batch[i].op, r.results.back().stat, session, first_create == i);
          }
          answers.emplace_back(std::move(batch[i].done), std::move(op));
        }
      } else if (r.code == Code::kOk || !per_op || failed == 0) {
        // Lost, or the session is gone (or, never expected, the added set
        // failed): every op's answer.
        answerAll(r.code == Code::kOk ? Code::kOther : r.code);
      } else {
        // The op that failed has its answer; the others were not applied
        // and go again, each alone, before anything asked after them (or,
        // the session closed meanwhile, are answered kClosing).
        for (size_t i = 0; i < batch.size(); ++i) {
          const bool again = r.results[i].code == Code::kNotApplied;
          if (again && inner != nullptr) {
            sendOne(std::move(batch[i]));
            continue;
          }
          Result result;
          result.code = again ? Code::kClosing : r.results[i].code;
          answers.emplace_back(std::move(batch[i].done), std::move(result));
        }
      }
      flush();
    }
    for (auto& [done, result] : answers) done(result);
  }

  // A node created by a multi: the transaction's zxid, which the added set's
  // stat has; the set made the first one's version 1.
  static Stat createdStat(const Op& op, const Stat& txn, int64_t session, bool set_by_multi) {
    Stat stat;
    stat.czxid = stat.mzxid = txn.mzxid;
    stat.version = set_by_multi ? 1 : 0;
    stat.ephemeral_owner = ephemeral(op.mode) ? session : 0;
    return stat;
  }

  // The session closed: what was not sent is answered kClosing.
  void close() {
    std::deque<Entry> unsent;
    {
      std::lock_guard<std::mutex> lock(mu);
      inner = nullptr;
      unsent.swap(queue);
    }
    for (auto& entry : unsent) {
      Done done = std::visit([](auto& e) { return std::move(e.done); }, entry);
      post([done = std::move(done)] {
        Result closing;
        closing.code = Code::kClosing;
        done(closing);
      });
    }
  }

  std::mutex mu;
  Keeper* inner ABSL_GUARDED_BY(mu);  // null once closed
  const Post post;
  const size_t max_batch;
  std::deque<Entry> queue ABSL_GUARDED_BY(mu);
  int writes_in_flight ABSL_GUARDED_BY(mu) = 0;  // batchable creates and multis sent and not answered
  bool multi_in_flight ABSL_GUARDED_BY(mu) = false;
  std::vector<std::string> multi_paths ABSL_GUARDED_BY(mu);  // of the multi in flight
};

BatchingKeeper::BatchingKeeper(std::unique_ptr<Keeper> inner, Post post, size_t max_batch)
    : state_(std::make_shared<State>(inner.get(), std::move(post), max_batch)), inner_(std::move(inner)) {}

BatchingKeeper::~BatchingKeeper() { state_->close(); }

void BatchingKeeper::create(const std::string& path, const std::string& data, CreateMode mode, Done done) {
  if (mode == CreateMode::kEphemeralSequential || mode == CreateMode::kContainer) {
    // A sequential name is the server's to choose, and its caller wants the
    // stat of that very node; a container cannot go in a multi (keeper.h).
    return state_->alone(
        {path, [path, data, mode](Keeper* k, Done d) { k->create(path, data, mode, std::move(d)); }, std::move(done)});
  }
  state_->write({Op::create(path, data, mode), std::move(done)});
}

void BatchingKeeper::remove(const std::string& path, int32_t version, Done done) {
  // Not held back behind other writes: ZooKeeper deletes by version only,
  // so a delete that waited could meet a node that someone else created
  // meanwhile with the same version (RELIABILITY.md).
  state_->alone(
      {path, [path, version](Keeper* k, Done d) { k->remove(path, version, std::move(d)); }, std::move(done)});
}

void BatchingKeeper::get(const std::string& path, Done done) {
  state_->alone({path, [path](Keeper* k, Done d) { k->get(path, std::move(d)); }, std::move(done)});
}

void BatchingKeeper::exists(const std::string& path, Watch watch, Done done) {
  state_->alone({path, [path, watch = std::move(watch)](Keeper* k, Done d) { k->exists(path, watch, std::move(d)); },
                 std::move(done)});
}

void BatchingKeeper::children(const std::string& path, Watch watch, Done done) {
  state_->alone({path, [path, watch = std::move(watch)](Keeper* k, Done d) { k->children(path, watch, std::move(d)); },
                 std::move(done)});
}

void BatchingKeeper::sync(const std::string& path, Done done) {
  state_->alone({path, [path](Keeper* k, Done d) { k->sync(path, std::move(d)); }, std::move(done)});
}

void BatchingKeeper::multi(std::vector<Op> ops, Done done) {
  // Ordered after everything: "/" is related to every path.
  state_->alone({"/", [ops = std::move(ops)](Keeper* k, Done d) { k->multi(ops, std::move(d)); }, std::move(done)});
}

}  // namespace coordd::backend::keeper
