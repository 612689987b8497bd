#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"

namespace coordd::metrics {

// Label values, in the order of the family's label names.
using Labels = std::vector<std::string>;

// A monotonically increasing count. Lock-free.
class Counter {
 public:
  void inc(uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

// Observations counted into fixed buckets (upper bounds, ascending), with
// their sum. Lock-free.
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void observe(double value);

  struct Snapshot {
    std::vector<uint64_t> cumulative;  // one per bound, then +Inf
    double sum = 0;
  };
  Snapshot snapshot() const;
  const std::vector<double>& bounds() const { return bounds_; }

 private:
  const std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;  // bounds_.size() + 1
  std::atomic<double> sum_{0};
};

// Latency buckets in seconds, from 50 µs to 10 s.
std::vector<double> latencyBuckets();

// Metrics of one name, one child per combination of label values. Children
// live as long as the family: references to them stay valid.
template <typename Metric>
class Family {
 public:
  Family(std::function<std::unique_ptr<Metric>()> make) : make_(std::move(make)) {}

  // The child with these label values, made on first use.
  Metric& with(const Labels& values) {
    std::lock_guard<std::mutex> lock(mu_);
    std::unique_ptr<Metric>& child = children_[values];
    if (!child) child = make_();
    return *child;
  }

  // Every child so far, for rendering.
  template <typename Visit>
  void forEach(Visit&& visit) const {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [values, child] : children_) visit(values, *child);
  }

 private:
  const std::function<std::unique_ptr<Metric>()> make_;
  mutable std::mutex mu_;
  std::map<Labels, std::unique_ptr<Metric>> children_ ABSL_GUARDED_BY(mu_);
};

// A set of metrics rendered in Prometheus' text exposition format (0.0.4).
//
// Threading: registration and rendering may run on any thread; updates of
// counters and histograms are lock-free. Gauges are read when rendered,
// through their callbacks, which must not call back into the registry.
class Registry {
 public:
  Registry();
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  Family<Counter>& counter(const std::string& name, const std::string& help, std::vector<std::string> label_names);
  Family<Histogram>& histogram(const std::string& name, const std::string& help, std::vector<std::string> label_names,
                               std::vector<double> bounds);
  // A gauge whose values `read` returns, each with its label values, when
  // the registry is rendered.
  using GaugeReader = std::function<std::vector<std::pair<Labels, double>>()>;
  void gauge(const std::string& name, const std::string& help, std::vector<std::string> label_names, GaugeReader read);

  // Every metric, in registration order.
  std::string render() const;

 private:
  struct Entry;
  Entry& add(const std::string& name, const std::string& help, const char* type, std::vector<std::string> label_names);

  mutable std::mutex mu_;
  std::vector<std::unique_ptr<Entry>> entries_ ABSL_GUARDED_BY(mu_);
};

}  // namespace coordd::metrics
