#pragma once

#include <memory>

#include "backend/backend.h"
#include "backend/keeper/memory_keeper.h"
#include "backend/recipes/keeper_backend.h"

namespace coordd::backend::memory {

// The embedded coordinator of a single-host coordd: the same recipes as on
// ZooKeeper, on an in-memory keeper in this process. Nothing outside the
// process ends its session.
recipes::KeeperOptions embeddedOptions(const std::shared_ptr<keeper::MemoryKeeper>& keeper);
std::unique_ptr<Backend> makeEmbeddedBackend(std::shared_ptr<metrics::DaemonMetrics> metrics);

}  // namespace coordd::backend::memory
