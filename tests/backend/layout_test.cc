// Replicante's layout and payloads: the paths and JSON that Replicante's own
// coordinator reads and writes on the same ZooKeeper.
#include "backend/recipes/layout.h"

#include <catch2/catch.hpp>

using namespace coordd::backend;
using recipes::Layout;

TEST_CASE("layout: paths are the sha256 of the name - bucketed by its first 4 hex", "[layout]") {
  const std::string sha = recipes::sha256Hex("job");
  CHECK(recipes::sha256Hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  REQUIRE(sha.size() == 64);
  const Layout layout("/replicante");
  CHECK(layout.lock("job") == "/replicante/locks/" + sha.substr(0, 4) + "/" + sha);
  CHECK(layout.waiterQueue("job") == "/replicante/lock-waiters/" + sha.substr(0, 4) + "/" + sha);
  CHECK(layout.election("job") == "/replicante/elections/" + sha);
  CHECK(layout.member("0123456789abcdef0123456789abcdef") == "/replicante/nodes/0123/0123456789abcdef0123456789abcdef");
  CHECK(Layout("").lock("job") == "/locks/" + sha.substr(0, 4) + "/" + sha);
}

TEST_CASE("layout: a lock or candidate payload decodes to what was encoded", "[layout]") {
  const OwnerRecord owner{std::string(32, 'a'), "session-1", "billing \"worker\"", {{"pod", "web-0"}}};
  const recipes::DecodedNode lock = recipes::decodeNode(recipes::encodeLock("job", owner));
  CHECK(lock.name == "job");
  CHECK(lock.owner.node_id == owner.node_id);
  CHECK(lock.owner.session_id == "session-1");
  CHECK(lock.owner.label == "billing \"worker\"");
  CHECK(lock.owner.attributes == owner.attributes);

  const std::string binary("\xff\x00\x01", 3);  // not UTF-8: carried in base64
  for (const std::string& value : {std::string("http://10.0.0.1:8080"), binary}) {
    const recipes::DecodedNode candidate = recipes::decodeNode(recipes::encodeCandidate(owner, value));
    CHECK(candidate.value == value);
    CHECK(candidate.owner.label == owner.label);
  }
}

TEST_CASE("layout: foreign and broken payloads decode to what can be read", "[layout]") {
  // Replicante's own NodeId, without coordd's fields.
  const recipes::DecodedNode foreign = recipes::decodeNode(R"({"owner":{"id":"abc","extra":{"host":"h1"}}})");
  CHECK(foreign.owner.node_id == "abc");
  CHECK(foreign.owner.attributes.at("host") == "h1");
  CHECK(foreign.owner.label.empty());
  for (const std::string& broken : {std::string("not json"), std::string("[1,2]"), std::string(R"({"owner":7})")}) {
    const recipes::DecodedNode node = recipes::decodeNode(broken);
    CHECK(node.owner.node_id.empty());
    CHECK(node.name.empty());
  }
}

TEST_CASE("layout: a member record decodes to what was encoded", "[layout]") {
  const Member member{
      "0123456789abcdef0123456789abcdef", {{"zone", "eu-1"}}, "0.1.0", absl::FromUnixMillis(1700000000123)};
  const Member decoded = recipes::decodeMember(recipes::encodeMember(member));
  CHECK(decoded.node_id == member.node_id);
  CHECK(decoded.attributes == member.attributes);
  CHECK(decoded.version == "0.1.0");
  CHECK(decoded.since == member.since);
}
