#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include "spdlog/spdlog.h"

int main(int argc, char** argv) {
  // The state-change lines are for operators; tests read events instead.
  spdlog::set_level(spdlog::level::warn);
  return Catch::Session().run(argc, argv);
}
