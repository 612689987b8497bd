#include "metrics/registry.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"

namespace coordd::metrics {
namespace {

// Label values may hold anything; the format escapes \, " and newlines.
std::string escape(const std::string& value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

// {a="x",b="y"}, with `extra` (e.g. le="0.5") last; empty when there are no labels.
std::string labelText(const std::vector<std::string>& names, const Labels& values, const std::string& extra = "") {
  std::string text;
  for (size_t i = 0; i < names.size() && i < values.size(); ++i) {
    absl::StrAppend(&text, text.empty() ? "" : ",", names[i], "=\"", escape(values[i]), "\"");
  }
  if (!extra.empty()) absl::StrAppend(&text, text.empty() ? "" : ",", extra);
  return text.empty() ? text : absl::StrCat("{", text, "}");
}

std::string number(double value) {
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  if (std::isnan(value)) return "NaN";
  char buffer[32];
  // The shortest text that reads back as the same double.
  const auto result = std::to_chars(buffer, buffer + sizeof(buffer), value);
  return std::string(buffer, result.ptr);
}

}  // namespace

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), buckets_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
  for (size_t i = 0; i <= bounds_.size(); ++i) buckets_[i].store(0);
}

void Histogram::observe(double value) {
  const size_t bucket = std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin();
  buckets_[bucket].fetch_add(1, std::memory_order_relaxed);
  double sum = sum_.load(std::memory_order_relaxed);
  while (!sum_.compare_exchange_weak(sum, sum + value, std::memory_order_relaxed)) {
  }
}

Histogram::Snapshot Histogram::snapshot() const {
  Snapshot snapshot;
  uint64_t running = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    running += buckets_[i].load(std::memory_order_relaxed);
    snapshot.cumulative.push_back(running);
  }
  snapshot.sum = sum_.load(std::memory_order_relaxed);
  return snapshot;
}

std::vector<double> latencyBuckets() {
  return {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10};
}

struct Registry::Entry {
  std::string name;
  std::string help;
  const char* type;
  std::vector<std::string> label_names;
  std::unique_ptr<Family<Counter>> counters;
  std::unique_ptr<Family<Histogram>> histograms;
  GaugeReader gauge;
};

Registry::Registry() = default;
Registry::~Registry() = default;

Registry::Entry& Registry::add(const std::string& name, const std::string& help, const char* type,
                               std::vector<std::string> label_names) {
  auto entry = std::make_unique<Entry>();
  entry->name = name;
  entry->help = help;
  entry->type = type;
  entry->label_names = std::move(label_names);
  std::lock_guard<std::mutex> lock(mu_);
  entries_.push_back(std::move(entry));
  return *entries_.back();
}

Family<Counter>& Registry::counter(const std::string& name, const std::string& help,
                                   std::vector<std::string> label_names) {
  Entry& entry = add(name, help, "counter", std::move(label_names));
  entry.counters = std::make_unique<Family<Counter>>([] { return std::make_unique<Counter>(); });
  return *entry.counters;
}

Family<Histogram>& Registry::histogram(const std::string& name, const std::string& help,
                                       std::vector<std::string> label_names, std::vector<double> bounds) {
  Entry& entry = add(name, help, "histogram", std::move(label_names));
  entry.histograms =
      std::make_unique<Family<Histogram>>([bounds = std::move(bounds)] { return std::make_unique<Histogram>(bounds); });
  return *entry.histograms;
}

void Registry::gauge(const std::string& name, const std::string& help, std::vector<std::string> label_names,
                     GaugeReader read) {
  add(name, help, "gauge", std::move(label_names)).gauge = std::move(read);
}

std::string Registry::render() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string out;
  for (const auto& entry : entries_) {
    const std::string& name = entry->name;
    const auto& names = entry->label_names;
    absl::StrAppend(&out, "# HELP ", name, " ", entry->help, "\n# TYPE ", name, " ", entry->type, "\n");
    if (entry->counters) {
      entry->counters->forEach([&](const Labels& values, const Counter& counter) {
        absl::StrAppend(&out, name, labelText(names, values), " ", counter.value(), "\n");
      });
    } else if (entry->histograms) {
      entry->histograms->forEach([&](const Labels& values, const Histogram& histogram) {
        const Histogram::Snapshot snapshot = histogram.snapshot();
        for (size_t i = 0; i < snapshot.cumulative.size(); ++i) {
          const double bound =
              i < histogram.bounds().size() ? histogram.bounds()[i] : std::numeric_limits<double>::infinity();
          absl::StrAppend(&out, name, "_bucket", labelText(names, values, absl::StrCat("le=\"", number(bound), "\"")),
                          " ", snapshot.cumulative[i], "\n");
        }
        absl::StrAppend(&out, name, "_sum", labelText(names, values), " ", number(snapshot.sum), "\n");
        absl::StrAppend(&out, name, "_count", labelText(names, values), " ", snapshot.cumulative.back(), "\n");
      });
    } else if (entry->gauge) {
      for (const auto& [values, value] : entry->gauge()) {
        absl::StrAppend(&out, name, labelText(names, values), " ", number(value), "\n");
      }
    }
  }
  return out;
}

}  // namespace coordd::metrics
