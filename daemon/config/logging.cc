#include "config/logging.h"

#include <memory>

#include "spdlog/async.h"
#include "spdlog/pattern_formatter.h"
#include "spdlog/sinks/stdout_sinks.h"
#include "spdlog/spdlog.h"

namespace coordd::config {
namespace {

// Lines queued for stderr before the oldest are dropped.
constexpr size_t kLogQueueLines = 8192;

// The message as the body of a JSON string.
class JsonMessage final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&, spdlog::memory_buf_t& dest) override {
    static constexpr char kHex[] = "0123456789abcdef";
    for (char c : msg.payload) {
      switch (c) {
        case '"':
          dest.append(std::string_view("\\\""));
          break;
        case '\\':
          dest.append(std::string_view("\\\\"));
          break;
        case '\n':
          dest.append(std::string_view("\\n"));
          break;
        default:
          if (static_cast<unsigned char>(c) < 0x20) {
            const char escaped[] = {'\\', 'u', '0', '0', kHex[(c >> 4) & 0xF], kHex[c & 0xF]};
            dest.append(escaped, escaped + sizeof(escaped));
          } else {
            dest.push_back(c);
          }
      }
    }
  }
  std::unique_ptr<custom_flag_formatter> clone() const override { return std::make_unique<JsonMessage>(); }
};

}  // namespace

void setupLogging(const std::string& format, const std::string& level) {
  // Lines are written by a thread of their own: a call that logs never waits
  // on stderr, which a hung log collector can stop for ever. If the queue
  // fills meanwhile, the oldest lines are dropped (and counted) rather than
  // coordination stalled.
  spdlog::init_thread_pool(kLogQueueLines, 1);
  auto logger =
      std::make_shared<spdlog::async_logger>("coordd", std::make_shared<spdlog::sinks::stderr_sink_mt>(),
                                             spdlog::thread_pool(), spdlog::async_overflow_policy::overrun_oldest);
  if (format == "json") {
    auto formatter = std::make_unique<spdlog::pattern_formatter>();
    formatter->add_flag<JsonMessage>('*').set_pattern(R"({"time":"%Y-%m-%dT%H:%M:%S.%e%z","level":"%l","msg":"%*"})");
    logger->set_formatter(std::move(formatter));
  } else {
    logger->set_pattern("%Y-%m-%d %H:%M:%S.%e %^%l%$ %v");
  }
  logger->set_level(spdlog::level::from_str(level));
  spdlog::set_default_logger(std::move(logger));
}

void stopLogging() {
  if (auto pool = spdlog::thread_pool()) {
    if (const size_t dropped = pool->overrun_counter(); dropped > 0) {
      spdlog::warn("{} log lines were dropped while stderr was not read", dropped);
    }
  }
  // Writes what is queued, then joins the writer.
  spdlog::shutdown();
}

}  // namespace coordd::config
