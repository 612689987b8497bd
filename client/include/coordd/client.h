#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "coordd/session.h"
#include "coordd/types.h"

namespace coordd {

class Admin;

namespace detail {
struct Endpoint;
class ObserverStream;
}  // namespace detail

// Called with the current primary of an election (std::nullopt: none).
using LeaderCallback = std::function<void(const std::optional<LeaderInfo>& leader)>;

// A running Elections.Observe stream. Destroying it cancels the stream and
// joins its thread; do not destroy it from its own callbacks.
class Observer {
 public:
  ~Observer();
  Observer(const Observer&) = delete;
  Observer& operator=(const Observer&) = delete;

 private:
  friend class Client;
  explicit Observer(std::unique_ptr<detail::ObserverStream> stream);

  std::unique_ptr<detail::ObserverStream> stream_;
};

// TLS for a host:port address: coordd serves TCP only over TLS. PEM files;
// an empty field takes $COORDD_TLS_CA, $COORDD_TLS_CERT or $COORDD_TLS_KEY.
struct TlsOptions {
  std::string ca;    // CA that signed coordd's certificate; none: the system's roots
  std::string cert;  // this client's certificate, when coordd asks for one (mTLS)
  std::string key;   // its private key
};

// Entry point: one gRPC channel to one coordd. Thread-safe. Sessions,
// observers and admin handles keep the channel alive on their own, so they
// may outlive the Client.
class Client {
 public:
  // The daemon's address when none is given: $COORDD_ADDRESS, else this.
  static constexpr absl::string_view kDefaultAddress = "unix:/tmp/coordd.sock";

  // Accepts "unix:/path", "unix:///path", "/path" and "host:port"; empty means
  // the default above. INVALID_ARGUMENT for anything else, or for TLS files
  // that cannot be read (host:port only). Does not contact the daemon: an
  // unreachable daemon shows as UNAVAILABLE ("cannot reach coordd at ...") on
  // the first call.
  static absl::StatusOr<std::unique_ptr<Client>> connect(std::string address = "", TlsOptions tls = {});

  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // The address in use, normalised ("unix:/path" or "host:port").
  const std::string& address() const;

  // Opens a session (Sessions.Open) and starts its KeepAlive stream.
  absl::StatusOr<std::unique_ptr<Session>> openSession(SessionOptions options);

  // The current primary of `election`; std::nullopt when it has none.
  absl::StatusOr<std::optional<LeaderInfo>> leader(absl::string_view election);

  // Streams leader changes of `election`: `on_change` first gets the current
  // primary, then every change. `on_end` (optional) gets the final status if
  // the stream ends other than by destroying the Observer (e.g. UNAVAILABLE
  // when the daemon is unreachable or goes away). Both run on the observer's
  // own thread, one at a time.
  absl::StatusOr<std::unique_ptr<Observer>> observe(std::string election, LeaderCallback on_change,
                                                    std::function<void(const absl::Status&)> on_end = nullptr);

  // Operator calls (Admin service).
  Admin& admin();

 private:
  Client(std::shared_ptr<const detail::Endpoint> endpoint, std::unique_ptr<Admin> admin);

  std::shared_ptr<const detail::Endpoint> endpoint_;
  std::unique_ptr<Admin> admin_;
};

}  // namespace coordd
