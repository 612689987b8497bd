#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include "harness.h"
#include "load_worker.h"

int main(int argc, char** argv) {
  if (auto code = coordd::e2e::runWorkerIfAsked(argc, argv)) return *code;
  if (auto code = coordd::e2e::runLoadWorkerIfAsked(argc, argv)) return *code;
  return Catch::Session().run(argc, argv);
}
