#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

// The raw keeper: ZooKeeper's data model and session semantics, and nothing
// of coordd's recipes. The recipes (backend/recipes) are written once above
// it; it is implemented by the ZooKeeper C client (backend/zookeeper) and by
// an in-memory keeper (MemoryKeeper: the embedded coordinator and the
// simulation's ensemble).
namespace coordd::backend::keeper {

// What a call returned; the values are ZooKeeper's.
enum class Code {
  kOk,
  kNoNode,
  kNodeExists,
  kConnectionLoss,    // the answer was lost: the request may or may not have been applied
  kOperationTimeout,  // the same
  kClosing,           // the session was closed before the answer came
  kInvalidState,      // the session is not usable (expired, closing)
  kNoAuth,
  kAuthFailed,
  kSessionExpired,
  kSessionMoved,
  kBadVersion,
  kNotEmpty,
  kNoChildrenForEphemerals,
  kBadArguments,
  kUnimplemented,  // e.g. containers on a server that predates them
  kNotApplied,     // multi: another op of the transaction failed, so none was applied
  kOther,
};
const char* codeName(Code code);
// The one table from keeper codes to Status.
absl::Status toStatus(Code code, const std::string& what);
// The answer was lost: whether the request was applied is unknown.
inline bool uncertain(Code code) { return code == Code::kConnectionLoss || code == Code::kOperationTimeout; }

enum class CreateMode {
  kPersistent,
  kEphemeral,
  kEphemeralSequential,  // a 10-digit counter of the parent appended to the name
  kContainer,            // persistent; the server removes it once its last child goes
};

struct Stat {
  int64_t czxid = 0;  // the transaction that created the node
  int64_t mzxid = 0;
  int32_t version = 0;
  int64_t ephemeral_owner = 0;  // the session of an ephemeral node, else 0
  int32_t num_children = 0;
};

// One operation of a multi (a ZooKeeper transaction).
struct Op {
  enum class Type { kCreate, kDelete, kSet };
  Type type = Type::kCreate;
  std::string path;
  std::string data;                           // create, set
  CreateMode mode = CreateMode::kPersistent;  // create
  int32_t version = -1;                       // delete, set; -1: any

  static Op create(std::string path, std::string data, CreateMode mode) {
    return Op{Type::kCreate, std::move(path), std::move(data), mode, -1};
  }
  static Op remove(std::string path, int32_t version) {
    return Op{Type::kDelete, std::move(path), "", CreateMode::kPersistent, version};
  }
  static Op set(std::string path, std::string data, int32_t version) {
    return Op{Type::kSet, std::move(path), std::move(data), CreateMode::kPersistent, version};
  }
  bool isContainerCreate() const { return type == Type::kCreate && mode == CreateMode::kContainer; }
};

struct Result {
  Code code = Code::kOk;
  std::string path;  // create: the node created (sequential suffix included)
  std::string data;  // get
  Stat stat;         // create, get, exists, children; in a multi, set only
  std::vector<std::string> children;
  // multi: one per op, in order. When the multi failed, the op that failed
  // has its code (also `code`) and every other op kNotApplied; when its
  // answer was lost, none.
  std::vector<Result> results;
};

enum class WatchEvent { kCreated, kDeleted, kChanged, kChild };
// A session's state, as the client sees it.
enum class SessionState {
  kConnected,   // (again) in contact with a server, same session
  kConnecting,  // contact lost; the session may still be alive
  kExpired,     // the session is gone with its ephemeral nodes
  kAuthFailed,  // the credentials were refused
};

// One keeper session.
//
// Threading: calls may be made from any thread and never block. Answers,
// watches and session states are handed to the session's Post (never run
// inside a call), in the order the server produced them: a watch fires
// before the answer of any later request of the session. Every answer comes
// exactly once: the server's, or the error of a call that could not be
// issued, or kClosing when the session is closed first.
class Keeper {
 public:
  using Post = std::function<void(std::function<void()>)>;
  using Done = std::function<void(const Result&)>;
  // One-shot.
  using Watch = std::function<void(WatchEvent)>;
  using SessionWatch = std::function<void(SessionState)>;

  // Closes the session: its ephemeral nodes go at once.
  virtual ~Keeper() = default;

  virtual void create(const std::string& path, const std::string& data, CreateMode mode, Done done) = 0;
  virtual void get(const std::string& path, Done done) = 0;
  // `watch` (may be empty) fires on the node's creation, change or deletion.
  virtual void exists(const std::string& path, Watch watch, Done done) = 0;
  // `watch` (may be empty) fires once the children change or the node goes.
  virtual void children(const std::string& path, Watch watch, Done done) = 0;
  // version -1: any.
  virtual void remove(const std::string& path, int32_t version, Done done) = 0;
  // Its answer means the ensemble's leader saw this session alive after the
  // call was made.
  virtual void sync(const std::string& path, Done done) = 0;
  // Applies `ops` as one transaction: all of them, in order, or none. Every
  // change it makes carries the same zxid, so the nodes it creates share
  // their czxid. A create's result has its path, not its stat (ZooKeeper's
  // C client reads none): a set's stat gives the transaction's zxid. No
  // container create: ZooKeeper answers one in a multi with a stat that the
  // C client 3.8 does not expect, and its reply parser aborts the process;
  // such a multi is answered kUnimplemented, unsent.
  virtual void multi(std::vector<Op> ops, Done done) = 0;

  virtual int64_t sessionId() const = 0;
  virtual int64_t negotiatedTimeoutMs() const = 0;
  virtual std::string server() const = 0;
};

// Opens a session; it reports kConnected (or a failure) through on_session.
using KeeperFactory =
    std::function<absl::StatusOr<std::unique_ptr<Keeper>>(Keeper::Post post, Keeper::SessionWatch on_session)>;

}  // namespace coordd::backend::keeper
