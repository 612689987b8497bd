// Fuzzes the configuration parser: the input is YAML text, or (first byte 0)
// a command line of NUL-separated arguments. Whatever it is, parsing must
// return a Config or an error, never crash or hang.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "config/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  if (!input.empty() && input[0] == '\0') {
    std::vector<std::string> args = absl::StrSplit(input.substr(1), '\0');
    // --config would read a file the fuzzer named: not what is under test.
    for (const auto& arg : args) {
      if (arg.rfind("--config", 0) == 0) return 0;
    }
    auto parsed = coordd::config::parseCommandLine(args);
    if (parsed.ok()) coordd::config::describe(parsed->config);
    return 0;
  }
  auto parsed = coordd::config::parseConfigText(input);
  if (parsed.ok()) coordd::config::describe(*parsed);
  return 0;
}
