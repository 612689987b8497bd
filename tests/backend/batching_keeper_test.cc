// Group commit (BatchingKeeper) on the in-memory keeper, one answer at a
// time: what goes to the server alone, what together, in what order, and
// what each caller is answered.
#include <catch2/catch.hpp>
#include <deque>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "backend/keeper/batching_keeper.h"
#include "backend/keeper/faulty_keeper.h"
#include "backend/keeper/memory_keeper.h"

using namespace coordd::backend::keeper;

namespace {

// A batching session whose answers queue here and run when drained. `heard`:
// the keeper's answers by op ("multi" for a multi), in the order it gave
// them, which is the order the calls reached it.
struct Batched {
  Batched() {
    auto post = [this](std::function<void()> task) { queue.push_back(std::move(task)); };
    auto policy = [this](const std::string& op, const std::string&) {
      return lose.count(op) > 0 ? FaultyKeeper::Fault::kLoseAfterApplied : FaultyKeeper::Fault::kNone;
    };
    auto observer = [this](const std::string& op, const std::string&, const Result&) { heard.push_back(op); };
    auto inner =
        std::make_unique<FaultyKeeper>(keeper->open(post, [](SessionState) {}), post, policy, nullptr, observer);
    session = std::make_unique<BatchingKeeper>(std::move(inner), post);
    session->create("/l", "", CreateMode::kPersistent, [](const Result&) {});
    drain();
    heard.clear();
  }

  // Asks for a create of `path`; its answer is answers[index].
  size_t create(const std::string& path) {
    const size_t index = answers.size();
    answers.emplace_back(path, Result{});
    answers[index].second.code = Code::kOther;  // not answered yet
    session->create(path, "data", CreateMode::kEphemeral,
                    [this, index](const Result& r) { answers[index].second = r; });
    return index;
  }
  size_t remove(const std::string& path) {
    const size_t index = answers.size();
    answers.emplace_back(path, Result{});
    answers[index].second.code = Code::kOther;
    session->remove(path, -1, [this, index](const Result& r) { answers[index].second = r; });
    return index;
  }
  const Result& answer(size_t index) const { return answers[index].second; }
  // Runs the answers queued so far (not those they queue).
  void step() {
    std::deque<std::function<void()>> now;
    now.swap(queue);
    for (auto& task : now) task();
  }
  void drain() {
    while (!queue.empty()) step();
  }

  std::shared_ptr<MemoryKeeper> keeper = std::make_shared<MemoryKeeper>();
  std::deque<std::function<void()>> queue;
  std::vector<std::string> heard;
  std::set<std::string> lose;  // ops whose answers are lost after they applied ("create": any multi with one)
  std::vector<std::pair<std::string, Result>> answers;
  std::unique_ptr<BatchingKeeper> session;
};

}  // namespace

TEST_CASE("batching keeper: a lone create goes alone - those asked while it is in flight go as one multi", "[keeper]") {
  Batched b;
  const size_t a = b.create("/l/a");
  b.create("/l/b");
  b.create("/l/c");
  b.create("/l/d");
  b.drain();
  CHECK(b.heard == std::vector<std::string>{"create", "multi"});
  for (const auto& [path, answer] : b.answers) {
    INFO(path);
    REQUIRE(answer.code == Code::kOk);
    CHECK(answer.path == path);
    // The stat the caller gets is the node's.
    auto node = b.keeper->peek(path);
    REQUIRE(node);
    CHECK(answer.stat.czxid == node->stat.czxid);
    CHECK(answer.stat.version == node->stat.version);
    CHECK(answer.stat.ephemeral_owner == b.session->sessionId());
  }
  // One transaction: one token for the three, after the lone one's.
  CHECK(b.answer(1).stat.czxid == b.answer(3).stat.czxid);
  CHECK(b.answer(1).stat.czxid > b.answer(a).stat.czxid);
}

TEST_CASE("batching keeper: the op that fails is answered alone - the others go again at once", "[keeper]") {
  Batched b;
  b.create("/l/held");
  b.drain();
  b.heard.clear();
  b.create("/l/a");
  const size_t first = b.create("/l/b");
  const size_t held = b.create("/l/held");
  const size_t last = b.create("/l/c");
  b.drain();
  // The multi of b, held and c fails on held; b and c go again, each alone
  // (another failure would not hold them up again).
  CHECK(b.heard == std::vector<std::string>{"create", "multi", "create", "create"});
  CHECK(b.answer(held).code == Code::kNodeExists);
  for (size_t i : {first, last}) {
    INFO(b.answers[i].first);
    CHECK(b.answer(i).code == Code::kOk);
    CHECK(b.keeper->peek(b.answers[i].first));
  }
}

TEST_CASE("batching keeper: a call on a path of a failed multi goes after its ops that go again", "[keeper]") {
  Batched b;
  b.create("/l/held");
  b.drain();
  b.heard.clear();
  b.create("/l/a");                         // in flight
  const size_t held = b.create("/l/held");  // fails the multi ...
  const size_t again = b.create("/l/y");    // ... so this goes again
  Result read;
  read.code = Code::kOther;
  b.session->get("/l/y", [&](const Result& r) { read = r; });
  b.drain();
  CHECK(b.heard == std::vector<std::string>{"create", "multi", "create", "get"});
  CHECK(b.answer(held).code == Code::kNodeExists);
  CHECK(b.answer(again).code == Code::kOk);
  CHECK(read.code == Code::kOk);  // it sees /l/y
}

TEST_CASE("batching keeper: a delete is never held back behind other creates", "[keeper]") {
  Batched b;
  b.create("/l/x");
  b.drain();
  b.heard.clear();
  b.create("/l/a");  // in flight
  b.create("/l/b");  // queued
  const size_t freed = b.remove("/l/x");
  CHECK(b.queue.size() == 2);  // the delete went at once, behind /l/a only
  b.drain();
  CHECK(b.heard == std::vector<std::string>{"create", "delete", "create"});
  CHECK(b.answer(freed).code == Code::kOk);
}

TEST_CASE("batching keeper: a transaction whose answer is lost is lost for each of its ops", "[keeper]") {
  Batched b;
  const size_t alone = b.create("/l/a");
  b.lose = {"create"};  // the multi's
  b.create("/l/b");
  b.create("/l/c");
  b.drain();
  CHECK(b.answer(alone).code == Code::kOk);
  CHECK(b.answer(1).code == Code::kConnectionLoss);
  CHECK(b.answer(2).code == Code::kConnectionLoss);
  // Applied all the same: the callers' reconcilers find them.
  CHECK(b.keeper->peek("/l/b"));
  CHECK(b.keeper->peek("/l/c"));
}

TEST_CASE("batching keeper: a delete and a create of one path never share a multi", "[keeper]") {
  Batched b;
  b.create("/l/x");
  b.drain();
  b.heard.clear();
  const size_t other = b.create("/l/other");  // in flight
  const size_t freed = b.remove("/l/x");
  const size_t taken = b.create("/l/x");
  b.drain();
  CHECK(b.heard == std::vector<std::string>{"create", "delete", "create"});
  for (size_t i : {other, freed, taken}) CHECK(b.answer(i).code == Code::kOk);
}

TEST_CASE("batching keeper: when the session closes - what was not sent is answered kClosing", "[keeper]") {
  Batched b;
  b.create("/l/held");
  b.drain();
  const size_t sent = b.create("/l/a");
  const size_t batched = b.create("/l/b");
  const size_t held = b.create("/l/held");
  b.step();  // /l/a answered: the multi of /l/b and /l/held goes
  const size_t queued = b.create("/l/c");
  b.session.reset();
  b.drain();
  CHECK(b.answer(sent).code == Code::kOk);
  // The multi failed on /l/held: /l/b cannot go again.
  CHECK(b.answer(held).code == Code::kNodeExists);
  CHECK(b.answer(batched).code == Code::kClosing);
  CHECK(b.answer(queued).code == Code::kClosing);
}

TEST_CASE("batching keeper: a read waits for the multi in flight only if it touches its paths", "[keeper]") {
  // (And for what was asked before it: calls keep their order.)
  Batched b;
  b.create("/l/a");
  b.create("/l/b");
  b.create("/l/c");
  b.step();  // /l/a answered: the multi of /l/b and /l/c is in flight
  Result near, elsewhere;
  near.code = elsewhere.code = Code::kOther;
  b.session->exists("/elsewhere", nullptr, [&](const Result& r) { elsewhere = r; });
  b.session->get("/l/b", [&](const Result& r) { near = r; });
  b.step();  // the multi's answer, and what went with it
  CHECK(elsewhere.code == Code::kNoNode);
  CHECK(near.code == Code::kOther);  // sent once the multi was answered
  b.drain();
  CHECK(near.code == Code::kOk);
}
