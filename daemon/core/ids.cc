#include "core/ids.h"

#include "absl/random/random.h"

namespace coordd::core {

std::string randomHex(size_t digits) {
  static constexpr char kHex[] = "0123456789abcdef";
  thread_local absl::BitGen gen;
  std::string out(digits, '0');
  for (auto& c : out) c = kHex[absl::Uniform<int>(gen, 0, 16)];
  return out;
}

}  // namespace coordd::core
