#include "backend/memory/embedded.h"

namespace coordd::backend::memory {

recipes::KeeperOptions embeddedOptions(const std::shared_ptr<keeper::MemoryKeeper>& keeper) {
  recipes::KeeperOptions options;
  options.kind = "memory";
  options.name = "the embedded coordinator";
  options.root = "";
  options.open_session = keeper->factory();
  options.in_process = true;
  return options;
}

std::unique_ptr<Backend> makeEmbeddedBackend(std::shared_ptr<metrics::DaemonMetrics> metrics) {
  // The backend's session factory keeps the keeper.
  auto keeper = std::make_shared<keeper::MemoryKeeper>();
  recipes::KeeperOptions options = embeddedOptions(keeper);
  options.metrics = std::move(metrics);
  return std::make_unique<recipes::KeeperBackend>(std::move(options));
}

}  // namespace coordd::backend::memory
