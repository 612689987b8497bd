#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "coordd/election.h"
#include "coordd/lock.h"
#include "coordd/types.h"

namespace coordd {

struct SessionOptions {
  // Human label recorded with every lock and candidacy, e.g. "discovery-7f9c".
  std::string owner;
  // Without a ping for this long the daemon ends the session (1 s to 300 s).
  absl::Duration ttl = absl::Seconds(10);
  // Recorded with every lock and candidacy of the session.
  std::map<std::string, std::string> attributes;
  // Called once when the session ends, for whatever reason (close(), daemon
  // gone, ttl expired), after every lock's and election's callback. Runs on
  // the session's event thread; same rules as LockCallback.
  std::function<void(absl::string_view reason)> on_ended;
  // Called on the session's event thread whenever the lease is renewed
  // (every answered ping, about every W/3); same rules as LockCallback.
  std::function<void(const Lease& lease)> on_lease;
  // Processes of this client, besides this one, that the daemon must see
  // exit too before a broken KeepAlive stream frees what the session holds
  // (at most 8; honoured on the daemon's Unix socket in its pid namespace).
  // coordctl names its watchdog here, which outlives a killed coordctl until
  // the command it guards is gone.
  std::vector<int> guard_pids;
};

struct LockOptions {
  LockCallback on_change;
};

struct CampaignOptions {
  // The daemon re-registers the candidacy by itself after a coordinator
  // session loss or an admin step-down.
  bool rejoin = true;
  ElectionCallback on_change;
};

// Outcome of Session::tryLock: `guard` when acquired, otherwise `holder`.
struct TryLockResult {
  std::optional<LockGuard> guard;
  Owner holder;

  bool acquired() const { return guard.has_value(); }
};

// A client session: a lease on the daemon that every lock and candidacy
// belongs to. Keeps itself alive with a background KeepAlive stream (two
// threads: one reads, one pings and dispatches events), and ends — releasing
// everything — when closed, destroyed, or when the daemon goes away.
//
// The session holds a lease from the daemon, renewed by every answered ping:
// the daemon vouches for it only as long as its coordinator session is sure
// to last, so nobody else can be granted what this session holds before the
// lease runs out, even if the daemon hangs. Once it runs out, every held
// lock and primaryship reads kSuspended at once (held() and isPrimary()
// compare the clock themselves) and callbacks fire; once the lease is
// renewed, the daemon's Check/Status answers restore them. Acting safely
// across a pause of this process still needs the fencing token.
//
// All methods are thread-safe; close() may be called from one of this
// session's own callbacks (not from another session's: two sessions closing
// each other from their callbacks would wait for each other).
class Session {
 public:
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  // close(), ignoring errors.
  ~Session();

  const std::string& id() const;
  // Id of the daemon serving this session.
  const std::string& nodeId() const;
  // W: the session pings and the daemon sends at least every W/3.
  absl::Duration keepaliveWindow() const;
  // The lease as last renewed (both times in the past once it has run out).
  Lease lease() const;

  // Non-blocking acquire. OK with either a held guard or the holder's
  // record; ALREADY_EXISTS if this session holds `name` already.
  absl::StatusOr<TryLockResult> tryLock(std::string name, LockOptions options = {});
  // Blocking acquire, FIFO among waiters cluster-wide. DEADLINE_EXCEEDED
  // after `timeout`; CANCELLED if the session is closed meanwhile.
  absl::StatusOr<LockGuard> lock(std::string name, absl::Duration timeout, LockOptions options = {});
  // Registers a candidacy and returns with its first status (kPrimary or
  // kSecondary). ALREADY_EXISTS if this session campaigns in `election`.
  //
  // A lock or campaign call that fails with DEADLINE_EXCEEDED, CANCELLED,
  // UNAVAILABLE, UNKNOWN or INTERNAL may have been granted all the same (its
  // answer lost, or the deadline first): before returning, the session
  // releases the lock or resigns the candidacy, so that no hold is left that
  // it does not know of. Should the outcome of that be unknown too, the
  // name cannot be asked for again in this session (UNAVAILABLE): the
  // Release may yet be carried out and would meet the new grant.
  absl::StatusOr<std::unique_ptr<Election>> campaign(std::string election, std::string value,
                                                     CampaignOptions options = {});

  // True once the session has ended; then every lock is kLost and every
  // election kTerminated, and further calls return FAILED_PRECONDITION.
  bool ended() const;
  std::string endReason() const;

  // Ends the session (Sessions.Close), cancels blocking lock() calls, stops
  // the background threads. Idempotent; OK if the session had already ended.
  absl::Status close();

 private:
  friend class Client;
  explicit Session(std::shared_ptr<detail::SessionCore> core);

  std::shared_ptr<detail::SessionCore> core_;
};

}  // namespace coordd
