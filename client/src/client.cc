#include "coordd/client.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "coordd/admin.h"
#include "rpc.h"
#include "session_core.h"

namespace coordd {
namespace detail {
namespace {

// gRPC target for the address forms we accept.
absl::StatusOr<std::string> normalizeAddress(std::string address) {
  if (address.empty()) {
    const char* env = std::getenv("COORDD_ADDRESS");
    address = env != nullptr && *env != '\0' ? env : std::string(Client::kDefaultAddress);
  }
  absl::string_view rest = address;
  if (absl::ConsumePrefix(&rest, "unix://") || absl::ConsumePrefix(&rest, "unix:") || rest.front() == '/') {
    if (rest.empty()) return absl::InvalidArgumentError(absl::StrCat("address ", address, ": empty socket path"));
    return absl::StrCat("unix:", rest);
  }
  const size_t colon = rest.rfind(':');
  const absl::string_view port = colon == absl::string_view::npos ? "" : rest.substr(colon + 1);
  if (colon == 0 || port.empty() ||
      !std::all_of(port.begin(), port.end(), [](char c) { return absl::ascii_isdigit(c); })) {
    return absl::InvalidArgumentError(
        absl::StrCat("address ", address, ": expected unix:/path, unix:///path or host:port"));
  }
  return address;
}

// The contents of a PEM file named by `path`, else by $`env`; "" if neither.
absl::StatusOr<std::string> pemFile(std::string path, const char* env, const char* what) {
  if (path.empty() && std::getenv(env) != nullptr) path = std::getenv(env);
  if (path.empty()) return std::string();
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  if (!in || text.str().empty()) return absl::InvalidArgumentError(absl::StrCat("tls ", what, ": cannot read ", path));
  return text.str();
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentialsFor(const std::string& target,
                                                                         const TlsOptions& tls) {
  if (absl::StartsWith(target, "unix:")) return grpc::InsecureChannelCredentials();
  grpc::SslCredentialsOptions options;
  auto ca = pemFile(tls.ca, "COORDD_TLS_CA", "ca");
  auto cert = pemFile(tls.cert, "COORDD_TLS_CERT", "cert");
  auto key = pemFile(tls.key, "COORDD_TLS_KEY", "key");
  for (const auto* file : {&ca, &cert, &key}) {
    if (!file->ok()) return file->status();
  }
  options.pem_root_certs = *ca;
  options.pem_cert_chain = *cert;
  options.pem_private_key = *key;
  return grpc::SslCredentials(options);
}

std::optional<LeaderInfo> toLeader(const v1::LeaderResponse& response) {
  if (!response.has_leader()) return std::nullopt;
  return LeaderInfo{toOwner(response.owner()), response.value(), response.term()};
}

}  // namespace

// One Elections.Observe stream read by its own thread.
class ObserverStream {
 public:
  ObserverStream(std::shared_ptr<const Endpoint> endpoint, std::string election, LeaderCallback on_change,
                 std::function<void(const absl::Status&)> on_end)
      : endpoint_(std::move(endpoint)),
        stub_(v1::Elections::NewStub(endpoint_->channel)),
        on_change_(std::move(on_change)),
        on_end_(std::move(on_end)) {
    request_.set_election(std::move(election));
    thread_ = std::thread([this] { run(); });
  }

  ~ObserverStream() {
    cancelled_.store(true);
    context_.TryCancel();
    thread_.join();
  }

 private:
  void run() {
    std::unique_ptr<grpc::ClientReader<v1::LeaderResponse>> reader = stub_->Observe(&context_, request_);
    v1::LeaderResponse response;
    while (reader->Read(&response)) on_change_(toLeader(response));
    const absl::Status status = toStatus(*endpoint_, reader->Finish());
    if (!cancelled_.load() && on_end_) on_end_(status);
  }

  const std::shared_ptr<const Endpoint> endpoint_;
  const std::unique_ptr<v1::Elections::Stub> stub_;
  const LeaderCallback on_change_;
  const std::function<void(const absl::Status&)> on_end_;
  v1::ObserveRequest request_;
  grpc::ClientContext context_;
  std::atomic<bool> cancelled_{false};
  std::thread thread_;
};

}  // namespace detail

Observer::Observer(std::unique_ptr<detail::ObserverStream> stream) : stream_(std::move(stream)) {}

Observer::~Observer() = default;

absl::StatusOr<std::unique_ptr<Client>> Client::connect(std::string address, TlsOptions tls) {
  absl::StatusOr<std::string> target = detail::normalizeAddress(std::move(address));
  if (!target.ok()) return target.status();
  auto credentials = detail::credentialsFor(*target, tls);
  if (!credentials.ok()) return credentials.status();
  grpc::ChannelArguments args;
  // A local daemon that restarts should be found again within a second, not
  // after gRPC's default backoff of up to two minutes.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  auto endpoint = std::make_shared<detail::Endpoint>(*target, grpc::CreateCustomChannel(*target, *credentials, args));
  auto admin = std::make_unique<Admin>(endpoint);
  return std::unique_ptr<Client>(new Client(std::move(endpoint), std::move(admin)));
}

Client::Client(std::shared_ptr<const detail::Endpoint> endpoint, std::unique_ptr<Admin> admin)
    : endpoint_(std::move(endpoint)), admin_(std::move(admin)) {}

Client::~Client() = default;

const std::string& Client::address() const { return endpoint_->address; }

Admin& Client::admin() { return *admin_; }

absl::StatusOr<std::unique_ptr<Session>> Client::openSession(SessionOptions options) {
  absl::StatusOr<std::shared_ptr<detail::SessionCore>> core = detail::SessionCore::open(endpoint_, std::move(options));
  if (!core.ok()) return core.status();
  return std::unique_ptr<Session>(new Session(*std::move(core)));
}

absl::StatusOr<std::optional<LeaderInfo>> Client::leader(absl::string_view election) {
  v1::LeaderRequest request;
  request.set_election(std::string(election));
  v1::LeaderResponse response;
  auto stub = v1::Elections::NewStub(endpoint_->channel);
  const absl::Status status = detail::unary(*endpoint_, detail::kCallTimeout, [&](grpc::ClientContext* context) {
    return stub->Leader(context, request, &response);
  });
  if (!status.ok()) return status;
  return detail::toLeader(response);
}

absl::StatusOr<std::unique_ptr<Observer>> Client::observe(std::string election, LeaderCallback on_change,
                                                          std::function<void(const absl::Status&)> on_end) {
  if (election.empty()) return absl::InvalidArgumentError("election: must not be empty");
  if (!on_change) return absl::InvalidArgumentError("observe needs an on_change callback");
  auto stream =
      std::make_unique<detail::ObserverStream>(endpoint_, std::move(election), std::move(on_change), std::move(on_end));
  return std::unique_ptr<Observer>(new Observer(std::move(stream)));
}

}  // namespace coordd
