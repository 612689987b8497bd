#include <catch2/catch.hpp>
#include <optional>
#include <string>
#include <vector>

#include "server/stream_writer.h"

namespace {

// Stands in for a gRPC reactor: records what is written, and completes a
// write only when the test says so (a peer that reads slowly).
struct SlowPeer {
  void StartWrite(const std::string* message) { in_flight.push_back(*message); }
  void Finish(const grpc::Status& status) { finished = status; }
  std::vector<std::string> in_flight;  // every write started, in order
  std::optional<grpc::Status> finished;
};

using Writer = coordd::server::StreamWriter<SlowPeer, std::string>;

// Completes writes until none is pending.
void drain(SlowPeer& peer, Writer& writer) {
  size_t done = 0;
  while (done < peer.in_flight.size()) {
    ++done;
    writer.onWriteDone(true);
  }
}

}  // namespace

TEST_CASE("stream writer: a newer message replaces a queued one of the same key, in its place", "[stream]") {
  SlowPeer peer;
  Writer writer(&peer);
  writer.write("job: held", "lock/1/job");  // written at once
  writer.write("heartbeat 1");
  writer.write("job: suspended", "lock/1/job");
  writer.write("svc: primary", "election/svc");
  writer.write("job: restored", "lock/1/job");  // replaces "suspended", keeps its place
  writer.write("heartbeat 2");                  // unkeyed: never replaced
  drain(peer, writer);
  CHECK(peer.in_flight ==
        std::vector<std::string>{"job: held", "heartbeat 1", "job: restored", "svc: primary", "heartbeat 2"});
  CHECK_FALSE(peer.finished.has_value());
}

TEST_CASE("stream writer: a burst for many holds queues one message per hold, and fits", "[stream]") {
  SlowPeer peer;
  Writer writer(&peer, 3072);
  // 1500 holds suspended, then restored, while the peer has read nothing.
  for (int round = 0; round < 2; ++round) {
    for (int i = 0; i < 1500; ++i) {
      writer.write((round == 0 ? "suspended " : "restored ") + std::to_string(i), "lock/" + std::to_string(i));
    }
  }
  CHECK_FALSE(peer.finished.has_value());
  drain(peer, writer);
  // Hold 0's suspension was being written when its restore came: that one
  // queues behind; every other hold is written once, restored.
  REQUIRE(peer.in_flight.size() == 1501);
  CHECK(peer.in_flight[0] == "suspended 0");
  CHECK(peer.in_flight[1] == "restored 1");
  CHECK(peer.in_flight[1499] == "restored 1499");
  CHECK(peer.in_flight[1500] == "restored 0");
}

TEST_CASE("stream writer: a peer that never reads has its stream ended at the bound", "[stream]") {
  SlowPeer peer;
  Writer writer(&peer, 100);
  for (int i = 0; i < 100; ++i) writer.write("heartbeat " + std::to_string(i));
  CHECK_FALSE(peer.finished.has_value());
  writer.write("one too many");
  // Ended once the write in flight completes: RESOURCE_EXHAUSTED.
  writer.onWriteDone(true);
  REQUIRE(peer.finished.has_value());
  CHECK(peer.finished->error_code() == grpc::RESOURCE_EXHAUSTED);
  CHECK(peer.in_flight.size() == 1);
}
