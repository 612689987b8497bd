// Fuzzes request validation and the core's handlers: the input is a series
// of calls, each an RPC number and that RPC's request as protobuf bytes
// (arbitrary; unparsable ones leave the request empty), converted as the gRPC
// layer does and run against the core on the embedded coordinator. Every call
// must answer (an error is fine); nothing may crash, hang or leak.
#include <fuzzer/FuzzedDataProvider.h>

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <google/protobuf/stubs/logging.h>

#include "backend/memory/embedded.h"
#include "coordd/v1/coordd.pb.h"
#include "core/core.h"
#include "spdlog/spdlog.h"

namespace {

using namespace coordd;

class DiscardingSink : public core::EventSink {
 public:
  void send(const core::Event&) override {}
  void close() override {}
};

// One daemon for the whole run: built once, like the process it stands for.
struct Daemon {
  Daemon()
      : backend(backend::memory::makeEmbeddedBackend(std::make_shared<metrics::DaemonMetrics>())),
        core({std::string(32, 'a'), {}, nullptr}, *backend) {
    core.start();
    while (core.daemonStatus().link != backend::LinkState::kConnected) {
    }
  }
  std::unique_ptr<backend::Backend> backend;
  core::Core core;
};

template <typename Message>
Message parsed(FuzzedDataProvider& input) {
  Message message;
  message.ParseFromString(input.ConsumeRandomLengthString(4096));
  return message;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Unparsable strings are expected here, and sessions come and go by the
  // thousand: neither protobuf nor coordd's log need say so each time.
  static const bool quiet = (google::protobuf::SetLogHandler(nullptr), spdlog::set_level(spdlog::level::off), true);
  (void)quiet;
  static Daemon* daemon = new Daemon();  // never destroyed: threads outlive main
  core::Core& core = daemon->core;
  FuzzedDataProvider input(data, size);
  std::vector<std::string> sessions;  // opened by this input, closed at its end
  // The session a call names: its own field, or one opened by this input.
  auto session = [&](const std::string& own) {
    const size_t pick = input.ConsumeIntegralInRange<size_t>(0, sessions.size());
    return pick == sessions.size() ? own : sessions[pick];
  };
  auto ignore = [](auto) {};
  while (input.remaining_bytes() > 0) {
    switch (input.ConsumeIntegralInRange(0, 9)) {
      case 0: {
        auto request = parsed<v1::OpenRequest>(input);
        std::map<std::string, std::string> attributes(request.attributes().begin(), request.attributes().end());
        auto info = core.openSession(request.owner(), std::chrono::milliseconds(request.ttl_ms()), attributes);
        if (info.ok()) {
          sessions.push_back(info->session_id);
          core.attachStream(info->session_id, std::make_shared<DiscardingSink>()).IgnoreError();
        }
        break;
      }
      case 1: {
        auto request = parsed<v1::TryAcquireRequest>(input);
        core.tryAcquire(session(request.session_id()), request.name(), ignore);
        break;
      }
      case 2: {
        auto request = parsed<v1::AcquireRequest>(input);
        core.acquire(session(request.session_id()), request.name(), std::chrono::milliseconds(request.timeout_ms()),
                     ignore);
        break;
      }
      case 3: {
        auto request = parsed<v1::ReleaseRequest>(input);
        core.release(session(request.session_id()), request.name(), ignore);
        break;
      }
      case 4: {
        auto request = parsed<v1::CheckRequest>(input);
        core.check(session(request.session_id()), request.name()).IgnoreError();
        break;
      }
      case 5: {
        auto request = parsed<v1::CampaignRequest>(input);
        core.campaign(session(request.session_id()), request.election(), request.value(), request.rejoin(), ignore);
        break;
      }
      case 6: {
        auto request = parsed<v1::StatusRequest>(input);
        core.status(session(request.session_id()), request.election()).IgnoreError();
        break;
      }
      case 7: {
        auto request = parsed<v1::ResignRequest>(input);
        core.resign(session(request.session_id()), request.election(), ignore);
        break;
      }
      case 8: {
        auto request = parsed<v1::KeepAliveRequest>(input);
        core.ping(session(request.session_id()), request.ping_id()).IgnoreError();
        break;
      }
      case 9: {
        auto request = parsed<v1::CloseRequest>(input);
        core.closeSession(session(request.session_id()), ignore);
        break;
      }
    }
  }
  for (const auto& id : sessions) core.closeSession(id, ignore);
  return 0;
}
