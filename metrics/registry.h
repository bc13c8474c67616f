// Prometheus metrics: counters, gauges, histograms with fixed buckets, labels, and the text
// exposition format (version 0.0.4) they render to.
//
// A Registry owns metric families (one name, one type, one help text) and, in each family, one
// metric per label set. Registration (Counter()/Gauge()/Histogram()/Callback()) takes a mutex and
// returns a pointer that stays valid for the registry's life; asking again for the same name and
// labels returns the same metric. The hot path (Increment/Set/Observe) is lock-free: relaxed
// atomics, no allocation. Render() calls the collectors (functions that refresh gauges from their
// owners, e.g. the scheduler's queue length), then, under the registration mutex, the callback
// metrics, and writes every family sorted by name, label sets sorted, with HELP and label values
// escaped as the format requires. Thread-safe throughout.
//
// Names must match [a-zA-Z_:][a-zA-Z0-9_:]*, label names [a-zA-Z_][a-zA-Z0-9_]* (not starting
// with "__", and not "le" on a histogram); misuse is a programmer error (CHECK).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tandem::metrics {

// Label name -> value. Order does not matter (they are rendered sorted by name).
using Labels = std::map<std::string, std::string>;

class Counter {
 public:
  // v must be >= 0 (counters only go up).
  void Increment(double v = 1.0) { value_.fetch_add(v, std::memory_order_relaxed); }
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

class Gauge {
 public:
  void Set(double v) { value_.store(v, std::memory_order_relaxed); }
  void Add(double v) { value_.fetch_add(v, std::memory_order_relaxed); }
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

class Histogram {
 public:
  // `bounds`: the upper bounds of the finite buckets, strictly increasing (+Inf is implicit).
  explicit Histogram(std::vector<double> bounds);
  void Observe(double v);

  struct Snapshot {
    std::vector<double> bounds;
    std::vector<uint64_t> cumulative;  // per bound, then +Inf (== count)
    double sum = 0;
    uint64_t count = 0;
  };
  // Not atomic as a whole: a concurrent Observe may show in some fields and not others.
  Snapshot Read() const;
  const std::vector<double>& bounds() const { return bounds_; }

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;  // bounds_.size() + 1 (the last is +Inf)
  std::atomic<double> sum_{0.0};
};

// Bucket layouts.
std::vector<double> ExponentialBuckets(double start, double factor, int count);
std::vector<double> LinearBuckets(double start, double width, int count);
// Latencies from 1 ms to ~65 s (seconds).
std::vector<double> LatencyBuckets();

enum class MetricType { kCounter, kGauge, kHistogram };

class Registry {
 public:
  Registry();
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  metrics::Counter* Counter(const std::string& name, const std::string& help,
                            const Labels& labels = {});
  metrics::Gauge* Gauge(const std::string& name, const std::string& help,
                        const Labels& labels = {});
  // Every label set of one histogram family must use the same bounds.
  metrics::Histogram* Histogram(const std::string& name, const std::string& help,
                                const std::vector<double>& bounds, const Labels& labels = {});
  // A counter or gauge whose value `fn` returns at render time (under the registry mutex: it must
  // not call into the registry nor take a lock held anywhere while registering metrics). For
  // values another component already keeps (atomics, a collector's snapshot).
  void Callback(const std::string& name, const std::string& help, MetricType type,
                const Labels& labels, std::function<double()> fn);
  // Runs before every render, one render at a time and outside the registry mutex (so it may lock
  // its owner, e.g. to take a snapshot and set gauges from it).
  void AddCollector(std::function<void()> fn);

  // The text exposition format, every family sorted by name.
  std::string Render() const;

 private:
  struct Family;
  Family& GetFamily(const std::string& name, const std::string& help, MetricType type,
                    const Labels& labels);

  mutable std::mutex render_mu_;  // taken before mu_; serialises renders
  mutable std::mutex mu_;
  std::map<std::string, std::unique_ptr<Family>> families_;
  std::vector<std::function<void()>> collectors_;
};

// A process-wide registry, for what exists once per process (a worker's step phases).
Registry& DefaultRegistry();

// Escapes for the text format: HELP (backslash, newline) and label values (also double quote).
std::string EscapeHelp(std::string_view text);
std::string EscapeLabelValue(std::string_view text);
// A sample value: integers exactly, others in the shortest form (15 to 17 significant digits)
// that reads back as the same double, "+Inf", "-Inf", "NaN".
std::string FormatValue(double v);
bool IsValidMetricName(std::string_view name);
bool IsValidLabelName(std::string_view name);

}  // namespace tandem::metrics
