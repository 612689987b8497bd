#include "core/validation.h"

#include <cstdint>

#include "absl/strings/str_cat.h"

namespace coordd::core {
namespace {

// Decodes one UTF-8 sequence at `i`; returns its length, 0 if malformed.
size_t decodeUtf8(absl::string_view s, size_t i, uint32_t& cp) {
  auto byte = [&](size_t k) { return static_cast<uint8_t>(s[k]); };
  uint8_t b0 = byte(i);
  size_t len = b0 < 0x80 ? 1 : (b0 >> 5) == 0x6 ? 2 : (b0 >> 4) == 0xE ? 3 : (b0 >> 3) == 0x1E ? 4 : 0;
  if (len == 0 || i + len > s.size()) return 0;
  cp = len == 1 ? b0 : len == 2 ? (b0 & 0x1F) : len == 3 ? (b0 & 0x0F) : (b0 & 0x07);
  for (size_t k = 1; k < len; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (byte(i + k) & 0x3F);
  }
  static constexpr uint32_t kMinForLength[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kMinForLength[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}

}  // namespace

absl::Status validateName(absl::string_view field, absl::string_view name) {
  if (name.empty()) return absl::InvalidArgumentError(absl::StrCat(field, ": must not be empty"));
  if (name.size() > kMaxNameBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": ", name.size(), " bytes, at most ", kMaxNameBytes, " allowed"));
  }
  for (size_t i = 0; i < name.size();) {
    uint32_t cp = 0;
    size_t len = decodeUtf8(name, i, cp);
    if (len == 0) return absl::InvalidArgumentError(absl::StrCat(field, ": not valid UTF-8 at byte ", i));
    if (cp < 0x20 || (cp >= 0x7F && cp <= 0x9F)) {
      return absl::InvalidArgumentError(absl::StrCat(field, ": control character at byte ", i));
    }
    i += len;
  }
  return absl::OkStatus();
}

absl::Status validateValue(absl::string_view field, absl::string_view value) {
  if (value.size() > kMaxValueBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": ", value.size(), " bytes, at most ", kMaxValueBytes, " allowed"));
  }
  return absl::OkStatus();
}

absl::Status validateAttributes(const std::map<std::string, std::string>& attributes) {
  if (attributes.size() > kMaxAttributes) {
    return absl::InvalidArgumentError(
        absl::StrCat("attributes: ", attributes.size(), " entries, at most ", kMaxAttributes, " allowed"));
  }
  for (const auto& [key, value] : attributes) {
    if (auto status = validateName("attributes key", key); !status.ok()) return status;
    if (value.size() > kMaxAttributeValueBytes) {
      return absl::InvalidArgumentError(absl::StrCat("attributes[", key, "]: ", value.size(), " bytes, at most ",
                                                     kMaxAttributeValueBytes, " allowed"));
    }
  }
  return absl::OkStatus();
}

absl::Status validateSessionId(absl::string_view session_id) {
  if (session_id.empty()) return absl::InvalidArgumentError("session_id: must not be empty");
  if (session_id.size() > 64) return absl::InvalidArgumentError("session_id: longer than any session id");
  return absl::OkStatus();
}

absl::Status validateTtl(std::chrono::milliseconds ttl) {
  if (ttl.count() == 0) return absl::OkStatus();
  if (ttl < kMinTtl || ttl > kMaxTtl) {
    return absl::InvalidArgumentError(absl::StrCat("ttl_ms: ", ttl.count(), " is out of range; allowed ",
                                                   kMinTtl.count(), " to ", kMaxTtl.count(), " (0: default)"));
  }
  return absl::OkStatus();
}

absl::Status validateTimeout(std::chrono::milliseconds timeout) {
  if (timeout.count() < 1 || timeout > kMaxAcquireTimeout) {
    return absl::InvalidArgumentError(
        absl::StrCat("timeout_ms: ", timeout.count(), " is out of range; allowed 1 to ", kMaxAcquireTimeout.count()));
  }
  return absl::OkStatus();
}

}  // namespace coordd::core
