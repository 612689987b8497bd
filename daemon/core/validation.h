#pragma once

#include <chrono>
#include <map>
#include <string>
#include "absl/strings/string_view.h"

#include "absl/status/status.h"

namespace coordd::core {

inline constexpr size_t kMaxNameBytes = 512;
inline constexpr size_t kMaxValueBytes = 64 * 1024;
inline constexpr size_t kMaxAttributes = 64;
inline constexpr size_t kMaxAttributeValueBytes = 4 * 1024;
inline constexpr std::chrono::milliseconds kDefaultTtl{10'000};
inline constexpr std::chrono::milliseconds kMinTtl{1'000};
inline constexpr std::chrono::milliseconds kMaxTtl{300'000};
inline constexpr std::chrono::milliseconds kMaxAcquireTimeout{86'400'000};

// Each returns InvalidArgument with a message that names `field`.

// 1 to 512 bytes of UTF-8 without control characters.
absl::Status validateName(absl::string_view field, absl::string_view name);
absl::Status validateValue(absl::string_view field, absl::string_view value);
absl::Status validateAttributes(const std::map<std::string, std::string>& attributes);
absl::Status validateSessionId(absl::string_view session_id);
// 0 means the default; otherwise 1 s to 300 s.
absl::Status validateTtl(std::chrono::milliseconds ttl);
absl::Status validateTimeout(std::chrono::milliseconds timeout);

}  // namespace coordd::core
