#include "metrics/registry.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>

#include "core/logging.h"

namespace tandem::metrics {

Histogram::Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)) {
  for (size_t i = 1; i < bounds_.size(); ++i) {
    TANDEM_CHECK(bounds_[i - 1] < bounds_[i]) << "histogram bounds must increase strictly";
  }
  TANDEM_CHECK(bounds_.empty() || std::isfinite(bounds_.back()));
  buckets_ = std::make_unique<std::atomic<uint64_t>[]>(bounds_.size() + 1);
  for (size_t i = 0; i <= bounds_.size(); ++i) buckets_[i].store(0);
}

void Histogram::Observe(double v) {
  // The first bucket whose upper bound is >= v ("le" is inclusive).
  const size_t i = std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin();
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(v, std::memory_order_relaxed);
}

Histogram::Snapshot Histogram::Read() const {
  Snapshot s;
  s.bounds = bounds_;
  s.cumulative.resize(bounds_.size() + 1);
  uint64_t total = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    total += buckets_[i].load(std::memory_order_relaxed);
    s.cumulative[i] = total;
  }
  s.count = total;
  s.sum = sum_.load(std::memory_order_relaxed);
  return s;
}

std::vector<double> ExponentialBuckets(double start, double factor, int count) {
  TANDEM_CHECK(start > 0 && factor > 1 && count >= 1);
  std::vector<double> out;
  double v = start;
  for (int i = 0; i < count; ++i, v *= factor) out.push_back(v);
  return out;
}

std::vector<double> LinearBuckets(double start, double width, int count) {
  TANDEM_CHECK(width > 0 && count >= 1);
  std::vector<double> out;
  for (int i = 0; i < count; ++i) out.push_back(start + width * i);
  return out;
}

std::vector<double> LatencyBuckets() { return ExponentialBuckets(0.001, 2.0, 17); }

struct Registry::Family {
  std::string name;
  std::string help;
  MetricType type;
  std::vector<double> bounds;  // histograms
  std::map<Labels, std::unique_ptr<metrics::Counter>> counters;
  std::map<Labels, std::unique_ptr<metrics::Gauge>> gauges;
  std::map<Labels, std::unique_ptr<metrics::Histogram>> histograms;
  std::map<Labels, std::function<double()>> callbacks;
};

Registry::Registry() = default;
Registry::~Registry() = default;

Registry& DefaultRegistry() {
  static Registry* registry = new Registry();
  return *registry;
}

bool IsValidMetricName(std::string_view name) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
    if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

bool IsValidLabelName(std::string_view name) {
  if (name.empty() || name.substr(0, 2) == "__") return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

Registry::Family& Registry::GetFamily(const std::string& name, const std::string& help,
                                      MetricType type, const Labels& labels) {
  TANDEM_CHECK(IsValidMetricName(name)) << "metric name '" << name << "'";
  for (const auto& [k, v] : labels) {
    TANDEM_CHECK(IsValidLabelName(k)) << "label name '" << k << "' of " << name;
    TANDEM_CHECK(!(type == MetricType::kHistogram && k == "le")) << name;
  }
  auto& slot = families_[name];
  if (!slot) {
    slot = std::make_unique<Family>();
    slot->name = name;
    slot->help = help;
    slot->type = type;
  }
  TANDEM_CHECK(slot->type == type) << "metric " << name << " registered with two types";
  return *slot;
}

metrics::Counter* Registry::Counter(const std::string& name, const std::string& help,
                                    const Labels& labels) {
  std::lock_guard<std::mutex> lock(mu_);
  Family& f = GetFamily(name, help, MetricType::kCounter, labels);
  TANDEM_CHECK(f.callbacks.count(labels) == 0) << name;
  auto& c = f.counters[labels];
  if (!c) c = std::make_unique<metrics::Counter>();
  return c.get();
}

metrics::Gauge* Registry::Gauge(const std::string& name, const std::string& help,
                                const Labels& labels) {
  std::lock_guard<std::mutex> lock(mu_);
  Family& f = GetFamily(name, help, MetricType::kGauge, labels);
  TANDEM_CHECK(f.callbacks.count(labels) == 0) << name;
  auto& g = f.gauges[labels];
  if (!g) g = std::make_unique<metrics::Gauge>();
  return g.get();
}

metrics::Histogram* Registry::Histogram(const std::string& name, const std::string& help,
                                        const std::vector<double>& bounds, const Labels& labels) {
  std::lock_guard<std::mutex> lock(mu_);
  Family& f = GetFamily(name, help, MetricType::kHistogram, labels);
  if (f.histograms.empty()) f.bounds = bounds;
  TANDEM_CHECK(f.bounds == bounds) << "histogram " << name << " registered with two bucket layouts";
  auto& h = f.histograms[labels];
  if (!h) h = std::make_unique<metrics::Histogram>(bounds);
  return h.get();
}

void Registry::Callback(const std::string& name, const std::string& help, MetricType type,
                        const Labels& labels, std::function<double()> fn) {
  TANDEM_CHECK(type != MetricType::kHistogram) << name;
  std::lock_guard<std::mutex> lock(mu_);
  Family& f = GetFamily(name, help, type, labels);
  TANDEM_CHECK(f.counters.count(labels) == 0 && f.gauges.count(labels) == 0) << name;
  f.callbacks[labels] = std::move(fn);
}

void Registry::AddCollector(std::function<void()> fn) {
  std::lock_guard<std::mutex> lock(mu_);
  collectors_.push_back(std::move(fn));
}

std::string EscapeHelp(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string EscapeLabelValue(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '"') {
      out += "\\\"";
    } else {
      out += c;
    }
  }
  return out;
}

std::string FormatValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  if (v == std::trunc(v) && std::fabs(v) < 1e15) {
    std::snprintf(buf, sizeof(buf), "%.0f", v);
  } else {
    // The shortest form that reads back as the same double ("0.1", not "0.10000000000000001").
    for (int precision = 15; precision <= 17; ++precision) {
      std::snprintf(buf, sizeof(buf), "%.*g", precision, v);
      if (std::strtod(buf, nullptr) == v) break;
    }
  }
  return buf;
}

namespace {

const char* TypeName(MetricType type) {
  switch (type) {
    case MetricType::kCounter:
      return "counter";
    case MetricType::kGauge:
      return "gauge";
    case MetricType::kHistogram:
      return "histogram";
  }
  return "untyped";
}

// `{a="x",b="y"}` with an optional extra label last (histograms' le); "" for no labels.
std::string RenderLabels(const Labels& labels, const char* extra_name = nullptr,
                         const std::string& extra_value = "") {
  if (labels.empty() && extra_name == nullptr) return "";
  std::string out = "{";
  bool first = true;
  for (const auto& [k, v] : labels) {
    if (!first) out += ',';
    first = false;
    out += k;
    out += "=\"";
    out += EscapeLabelValue(v);
    out += '"';
  }
  if (extra_name != nullptr) {
    if (!first) out += ',';
    out += extra_name;
    out += "=\"";
    out += EscapeLabelValue(extra_value);
    out += '"';
  }
  out += '}';
  return out;
}

void Sample(std::string& out, const std::string& name, const std::string& labels, double v) {
  out += name;
  out += labels;
  out += ' ';
  out += FormatValue(v);
  out += '\n';
}

}  // namespace

std::string Registry::Render() const {
  // Collectors run outside mu_ (they may take their owners' locks, and those owners may register
  // metrics while holding them), one render at a time.
  std::lock_guard<std::mutex> render_lock(render_mu_);
  std::vector<std::function<void()>> collectors;
  {
    std::lock_guard<std::mutex> lock(mu_);
    collectors = collectors_;
  }
  for (const auto& fn : collectors) fn();
  std::lock_guard<std::mutex> lock(mu_);
  std::string out;
  for (const auto& [name, f] : families_) {
    out += "# HELP " + name + " " + EscapeHelp(f->help) + "\n";
    out += "# TYPE " + name + " " + TypeName(f->type) + "\n";
    if (f->type == MetricType::kHistogram) {
      for (const auto& [labels, h] : f->histograms) {
        const Histogram::Snapshot s = h->Read();
        for (size_t i = 0; i < s.bounds.size(); ++i) {
          Sample(out, name + "_bucket", RenderLabels(labels, "le", FormatValue(s.bounds[i])),
                 static_cast<double>(s.cumulative[i]));
        }
        Sample(out, name + "_bucket", RenderLabels(labels, "le", "+Inf"),
               static_cast<double>(s.count));
        Sample(out, name + "_sum", RenderLabels(labels), s.sum);
        Sample(out, name + "_count", RenderLabels(labels), static_cast<double>(s.count));
      }
      continue;
    }
    // Counters, gauges and callbacks of one family, merged in label order.
    std::map<Labels, double> values;
    for (const auto& [labels, c] : f->counters) values[labels] = c->value();
    for (const auto& [labels, g] : f->gauges) values[labels] = g->value();
    for (const auto& [labels, fn] : f->callbacks) values[labels] = fn();
    for (const auto& [labels, v] : values) Sample(out, name, RenderLabels(labels), v);
  }
  return out;
}

}  // namespace tandem::metrics
