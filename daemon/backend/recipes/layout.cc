#include "backend/recipes/layout.h"

#include <openssl/evp.h>

#include <nlohmann/json.hpp>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace coordd::backend::recipes {
namespace {

using nlohmann::json;

constexpr char kSession[] = "coordd.session";
constexpr char kLabel[] = "coordd.owner";
constexpr char kValue[] = "coordd.value";
constexpr char kValueBase64[] = "coordd.value_base64";
constexpr char kVersion[] = "coordd.version";
constexpr char kSince[] = "coordd.since_ms";

bool isUtf8(const std::string& s) {
  try {
    (void)json(s).dump();
    return true;
  } catch (const json::exception&) {
    return false;
  }
}

json nodeId(const OwnerRecord& owner) {
  json extra = json::object();
  for (const auto& [k, v] : owner.attributes) extra[k] = v;
  extra[kSession] = owner.session_id;
  extra[kLabel] = owner.label;
  return json{{"id", owner.node_id}, {"extra", extra}};
}

OwnerRecord ownerOf(const json& id) {
  OwnerRecord owner;
  if (!id.is_object()) return owner;
  if (id.contains("id") && id["id"].is_string()) owner.node_id = id["id"];
  if (id.contains("extra") && id["extra"].is_object()) {
    for (const auto& [k, v] : id["extra"].items()) {
      if (!v.is_string()) continue;
      if (k == kSession) {
        owner.session_id = v;
      } else if (k == kLabel) {
        owner.label = v;
      } else if (k != kValue && k != kValueBase64) {
        owner.attributes[k] = v;
      }
    }
  }
  return owner;
}

std::string bucketed(const std::string& dir, const std::string& key) {
  return absl::StrCat(dir, "/", key.substr(0, 4), "/", key);
}

}  // namespace

std::string sha256Hex(const std::string& data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), digest, &len, EVP_sha256(), nullptr);
  std::string hex;
  for (unsigned int i = 0; i < len; ++i) absl::StrAppendFormat(&hex, "%02x", digest[i]);
  return hex;
}

std::string Layout::lock(const std::string& name) const { return bucketed(locks(), sha256Hex(name)); }
std::string Layout::waiterQueue(const std::string& name) const { return bucketed(waiters(), sha256Hex(name)); }
std::string Layout::election(const std::string& name) const { return absl::StrCat(elections(), "/", sha256Hex(name)); }
std::string Layout::member(const std::string& node_id) const { return bucketed(nodes(), node_id); }

std::string encodeLock(const std::string& name, const OwnerRecord& owner) {
  return json{{"name", name}, {"owner", nodeId(owner)}}.dump();
}

std::string encodeCandidate(const OwnerRecord& owner, const std::string& value) {
  json id = nodeId(owner);
  if (isUtf8(value)) {
    id["extra"][kValue] = value;
  } else {
    id["extra"][kValueBase64] = absl::Base64Escape(value);
  }
  return json{{"owner", id}}.dump();
}

std::string encodeElection(const std::string& name) { return json{{"name", name}}.dump(); }

std::string encodeMember(const Member& member) {
  json extra = json::object();
  for (const auto& [k, v] : member.attributes) extra[k] = v;
  extra[kVersion] = member.version;
  extra[kSince] = absl::StrCat(absl::ToUnixMillis(member.since));
  return json{{"id", member.node_id}, {"extra", extra}}.dump();
}

DecodedNode decodeNode(const std::string& data) {
  DecodedNode node;
  json doc = json::parse(data, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_object()) return node;
  if (doc.contains("name") && doc["name"].is_string()) node.name = doc["name"];
  if (doc.contains("owner")) {
    node.owner = ownerOf(doc["owner"]);
    const json& extra = doc["owner"].contains("extra") ? doc["owner"]["extra"] : json();
    if (extra.is_object() && extra.contains(kValue) && extra[kValue].is_string()) {
      node.value = extra[kValue];
    } else if (extra.is_object() && extra.contains(kValueBase64) && extra[kValueBase64].is_string()) {
      absl::Base64Unescape(extra[kValueBase64].get<std::string>(), &node.value);
    }
  }
  return node;
}

Member decodeMember(const std::string& data) {
  Member member;
  json doc = json::parse(data, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_object()) return member;
  if (doc.contains("id") && doc["id"].is_string()) member.node_id = doc["id"];
  if (doc.contains("extra") && doc["extra"].is_object()) {
    for (const auto& [k, v] : doc["extra"].items()) {
      if (!v.is_string()) continue;
      if (k == kVersion) {
        member.version = v;
      } else if (k == kSince) {
        int64_t ms = 0;
        if (absl::SimpleAtoi(v.get<std::string>(), &ms)) member.since = absl::FromUnixMillis(ms);
      } else {
        member.attributes[k] = v;
      }
    }
  }
  return member;
}

}  // namespace coordd::backend::recipes
