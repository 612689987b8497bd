#pragma once

#include <cstddef>
#include <string>

namespace coordd::core {

// `digits` random lowercase hex digits from a non-deterministic source: node
// ids (32 digits) and client session ids (16 digits).
std::string randomHex(size_t digits);

}  // namespace coordd::core
