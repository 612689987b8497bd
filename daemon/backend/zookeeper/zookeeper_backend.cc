#include "backend/zookeeper/zookeeper_backend.h"

#include "backend/recipes/keeper_backend.h"
#include "backend/zookeeper/zk_client.h"
#include "spdlog/spdlog.h"

namespace coordd::backend::zookeeper {

std::unique_ptr<Backend> makeZookeeperBackend(const ZookeeperOptions& options) {
  const size_t slash = options.ensemble.find('/');
  const std::string hosts = options.ensemble.substr(0, slash);
  std::string root = slash == std::string::npos ? "" : options.ensemble.substr(slash);
  while (!root.empty() && root.back() == '/') root.pop_back();

  ZkClient::Options client{hosts, static_cast<int>(absl::ToInt64Milliseconds(options.session_timeout)), options.digest,
                           options.creator_acl, options.metrics};
  recipes::KeeperOptions recipes;
  recipes.kind = "zookeeper";
  recipes.name = "ZooKeeper";
  recipes.root = root;
  recipes.session_timeout = options.session_timeout;
  recipes.cleaner_interval = options.cleaner_interval;
  recipes.cleaner_limit = options.cleaner_limit;
  recipes.metrics = options.metrics;
  recipes.open_session =
      [client](keeper::Keeper::Post post,
               keeper::Keeper::SessionWatch on_session) -> absl::StatusOr<std::unique_ptr<keeper::Keeper>> {
    auto session = ZkClient::connect(client, std::move(post), std::move(on_session));
    if (!session.ok()) return session.status();
    spdlog::info("zookeeper: connecting to {} (session timeout {} ms)", client.hosts, client.timeout_ms);
    return std::unique_ptr<keeper::Keeper>(std::move(*session));
  };
  spdlog::info("zookeeper: ensemble {}, chroot \"{}\"", hosts, root);
  return std::make_unique<recipes::KeeperBackend>(std::move(recipes));
}

}  // namespace coordd::backend::zookeeper
