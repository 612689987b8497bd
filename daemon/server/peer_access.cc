#include "server/peer_access.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "server/convert.h"
#include "server/services.h"
#include "spdlog/spdlog.h"

namespace coordd::server {
namespace {

template <typename Id>
bool contains(const std::vector<Id>& ids, Id id) {
  return std::find(ids.begin(), ids.end(), id) != ids.end();
}

// "ipv4:10.0.0.1:5555" -> "10.0.0.1"; "ipv6:[::1]:5555" -> "::1".
std::string ipOf(const std::string& peer) {
  std::string address = peer.substr(peer.find(':') + 1);
  address = address.substr(0, address.rfind(':'));
  if (absl::StartsWith(address, "[")) address = address.substr(1, address.size() - 2);
  return address;
}

}  // namespace

void PeerAccess::connected(int fd, PeerCredentials peer) {
  std::lock_guard<std::mutex> lock(mu_);
  by_fd_[fd] = std::move(peer);  // a reused descriptor: the new connection
}

bool PeerAccess::allowed(const PeerCredentials& peer, Scope scope) const {
  const bool admin_listed = !policy_.admin_uids.empty() || !policy_.admin_gids.empty();
  const bool admin = scope == Scope::kAdmin && admin_listed;
  const auto& uids = admin ? policy_.admin_uids : policy_.api_uids;
  const auto& gids = admin ? policy_.admin_gids : policy_.api_gids;
  if (uids.empty() && gids.empty()) return true;
  if (contains(uids, peer.uid)) return true;
  return std::any_of(peer.gids.begin(), peer.gids.end(), [&](gid_t gid) { return contains(gids, gid); });
}

std::optional<PeerCredentials> PeerAccess::peerOf(const grpc::CallbackServerContext& context) const {
  const std::string peer = context.peer();
  int fd = -1;
  if (!absl::StartsWith(peer, "fd:") || !absl::SimpleAtoi(peer.substr(3), &fd)) return std::nullopt;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = by_fd_.find(fd);
  if (it == by_fd_.end()) return std::nullopt;
  return it->second;
}

absl::Status PeerAccess::check(const grpc::CallbackServerContext& context, Scope scope) const {
  const std::string peer = context.peer();
  if (absl::StartsWith(peer, "fd:")) {
    const std::optional<PeerCredentials> found = peerOf(context);
    if (!found) return absl::PermissionDeniedError("unknown Unix socket peer");
    const PeerCredentials& credentials = *found;
    if (allowed(credentials, scope)) return absl::OkStatus();
    const char* what = scope == Scope::kAdmin ? "Admin" : "the coordd API";
    const char* setting = scope == Scope::kAdmin ? "access.admin_uids/admin_gids" : "access.api_uids/api_gids";
    spdlog::warn("access denied: uid {} pid {} may not call {} ({})", credentials.uid, credentials.pid, what, setting);
    return absl::PermissionDeniedError(
        absl::StrCat("uid ", credentials.uid, " (pid ", credentials.pid, ") may not call ", what, "; see ", setting));
  }
  // TCP: TLS (and mTLS, if configured) already let the peer in.
  if (scope == Scope::kApi || contains(policy_.admin_tcp_peers, ipOf(peer))) return absl::OkStatus();
  spdlog::warn("access denied: {} may not call Admin over TCP (admin.allowed_peers)", peer);
  return absl::PermissionDeniedError(absl::StrCat("Admin is not allowed from ", ipOf(peer),
                                                  "; list it in admin.allowed_peers or use the Unix socket"));
}

grpc::ServerUnaryReactor* refuse(grpc::CallbackServerContext* context, const PeerAccess& access,
                                 PeerAccess::Scope scope) {
  absl::Status status = access.check(*context, scope);
  if (status.ok()) return nullptr;
  auto* reactor = context->DefaultReactor();
  reactor->Finish(toGrpc(status));
  return reactor;
}

}  // namespace coordd::server
