#include "probes.h"

#include <cstdio>
#include <future>
#include <memory>
#include <sstream>

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace coordd::e2e {

HttpResult httpGet(const std::string& address, const std::string& path) {
  // The status code comes last, on a line of its own.
  const std::string command =
      absl::StrCat("curl -s --max-time 5 -o - -w '\\n%{http_code}' 'http://", address, path, "'");
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(command.c_str(), "r"), pclose);
  if (!pipe) return {};
  std::string output;
  char buffer[4096];
  size_t n = 0;
  while ((n = fread(buffer, 1, sizeof(buffer), pipe.get())) > 0) output.append(buffer, n);
  const size_t last = output.rfind('\n');
  HttpResult result;
  if (last == std::string::npos || !absl::SimpleAtoi(output.substr(last + 1), &result.code)) return {};
  result.body = output.substr(0, last);
  return result;
}

std::string grpcHealth(const std::string& address) {
  auto channel = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  grpc::GenericStub stub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  // HealthCheckRequest{service = ""} is the empty message: one empty slice.
  grpc::Slice empty;
  grpc::ByteBuffer request(&empty, 1);
  grpc::ByteBuffer response;
  std::promise<grpc::Status> done;
  stub.UnaryCall(&context, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request, &response,
                 [&done](grpc::Status status) { done.set_value(std::move(status)); });
  const grpc::Status status = done.get_future().get();
  if (!status.ok()) return absl::StrCat("error ", status.error_code(), ": ", status.error_message());
  // HealthCheckResponse{status = 1}: tag 0x08, then the enum as a varint.
  std::vector<grpc::Slice> slices;
  if (!response.Dump(&slices).ok()) return "unreadable response";
  std::string bytes;
  for (const auto& slice : slices) bytes.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
  if (bytes == std::string("\x08\x01", 2)) return "SERVING";
  if (bytes == std::string("\x08\x02", 2)) return "NOT_SERVING";
  return absl::StrCat("unexpected response of ", bytes.size(), " bytes");
}

std::optional<double> metricValue(const std::string& text, const std::string& series) {
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.size() > series.size() && line.compare(0, series.size(), series) == 0 && line[series.size()] == ' ') {
      double value = 0;
      if (absl::SimpleAtod(line.substr(series.size() + 1), &value)) return value;
    }
  }
  return std::nullopt;
}

namespace {

// The word after `marker` in a log, e.g. the address after "on http://".
std::string wordAfter(const std::string& log, const std::string& marker) {
  const size_t at = log.find(marker);
  if (at == std::string::npos) return "";
  const size_t start = at + marker.size();
  return log.substr(start, log.find_first_of(" \n", start) - start);
}

}  // namespace

std::vector<std::string> observabilityFlags() { return {"--http", "127.0.0.1:0", "--health-listen", "127.0.0.1:0"}; }

ObservabilityEndpoints observabilityEndpoints(const Daemon& daemon) {
  // Logged once the HTTP listener is up, which may be just after ready.
  eventually([&] { return daemon.log().find("on http://") != std::string::npos; });
  const std::string log = daemon.log();
  ObservabilityEndpoints endpoints;
  endpoints.http = wordAfter(log, "on http://");
  const std::string health_port = wordAfter(log, "listening on 127.0.0.1:");
  if (!health_port.empty()) endpoints.health = "127.0.0.1:" + health_port;
  return endpoints;
}

std::optional<double> scrape(const std::string& http, const std::string& series) {
  const HttpResult scraped = httpGet(http, "/metrics");
  if (scraped.code != 200) return std::nullopt;
  return metricValue(scraped.body, series);
}

}  // namespace coordd::e2e
