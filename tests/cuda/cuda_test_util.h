// Helpers of the CUDA kernel tests: device buffers of float or Bf16 filled from fp32 host vectors,
// NaN poisoning, inputs rounded to the element type (so the fp32 CPU reference sees exactly what
// the GPU sees), per-dtype tolerances, and the skip when no device is present.
#pragma once

#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "core/dtype.h"
#include "gtest/gtest.h"
#include "kernels/cuda/device.h"
#include "kernels/cuda/types.h"

namespace tandem::kernels::cuda::testing {

// Skips the current test (with the runtime's reason) when no CUDA device can be used.
#define TANDEM_SKIP_WITHOUT_GPU()                                                       \
  do {                                                                                  \
    const ::absl::StatusOr<int> tandem_count = ::tandem::kernels::cuda::DeviceCount();  \
    if (!tandem_count.ok()) GTEST_SKIP() << "no usable GPU: " << tandem_count.status(); \
    if (*tandem_count == 0) GTEST_SKIP() << "no usable GPU: no CUDA device";            \
  } while (0)

template <typename T>
struct Tolerance;
// fp32: the GPU sums in another order (and with fp32 where the reference uses double).
template <>
struct Tolerance<float> {
  static constexpr float kAtol = 2e-4f, kRtol = 2e-4f;
  static constexpr const char* kName = "f32";
};
// bf16 outputs: one rounding of the output (2^-8 relative) plus accumulated rounding.
template <>
struct Tolerance<Bf16> {
  static constexpr float kAtol = 2e-2f, kRtol = 2e-2f;
  static constexpr const char* kName = "bf16";
};

template <typename T>
inline float RoundTo(float v) {
  if constexpr (std::is_same_v<T, Bf16>) {
    return core::RoundToBf16(v);
  } else {
    return v;
  }
}
template <typename T>
inline std::vector<float> Rounded(std::vector<float> v) {
  for (float& x : v) x = RoundTo<T>(x);
  return v;
}

template <typename T>
inline std::vector<float> Random(std::mt19937& rng, int64_t n, float lo = -1.0f, float hi = 1.0f) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = RoundTo<T>(dist(rng));
  return v;
}

// A device array of T (or any POD), freed on destruction. Errors fail the current test.
template <typename T>
class DeviceArray {
 public:
  explicit DeviceArray(int64_t n) : n_(n) {
    absl::StatusOr<void*> p = Malloc(static_cast<size_t>(n) * sizeof(T));
    EXPECT_TRUE(p.ok()) << p.status();
    if (p.ok()) ptr_ = static_cast<T*>(*p);
  }
  ~DeviceArray() {
    if (ptr_) (void)Free(ptr_);
  }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;

  T* get() const { return ptr_; }
  int64_t size() const { return n_; }
  size_t bytes() const { return static_cast<size_t>(n_) * sizeof(T); }

  void Poison() { EXPECT_TRUE(Memset(ptr_, 0xFF, bytes()).ok()); }
  void UploadRaw(const std::vector<T>& host) {
    ASSERT_EQ(static_cast<int64_t>(host.size()), n_);
    ASSERT_TRUE(CopyToDevice(ptr_, host.data(), bytes()).ok());
  }
  std::vector<T> DownloadRaw() const {
    std::vector<T> host(static_cast<size_t>(n_));
    EXPECT_TRUE(Synchronize().ok());
    EXPECT_TRUE(CopyToHost(host.data(), ptr_, bytes()).ok());
    return host;
  }

 private:
  int64_t n_ = 0;
  T* ptr_ = nullptr;
};

// A device array of element type T (float or Bf16) with fp32 host views.
template <typename T>
class DeviceTensor : public DeviceArray<T> {
 public:
  explicit DeviceTensor(int64_t n) : DeviceArray<T>(n) {}
  explicit DeviceTensor(const std::vector<float>& host)
      : DeviceArray<T>(static_cast<int64_t>(host.size())) {
    Upload(host);
  }
  void Upload(const std::vector<float>& host) {
    std::vector<T> raw(host.size());
    for (size_t i = 0; i < host.size(); ++i) {
      if constexpr (std::is_same_v<T, Bf16>) {
        raw[i].bits = core::FloatToBf16(host[i]);
      } else {
        raw[i] = host[i];
      }
    }
    this->UploadRaw(raw);
  }
  std::vector<float> Download() const {
    const std::vector<T> raw = this->DownloadRaw();
    std::vector<float> out(raw.size());
    for (size_t i = 0; i < raw.size(); ++i) {
      if constexpr (std::is_same_v<T, Bf16>) {
        out[i] = core::Bf16ToFloat(raw[i].bits);
      } else {
        out[i] = raw[i];
      }
    }
    return out;
  }
};

template <typename V>
inline std::unique_ptr<DeviceArray<V>> ToDevice(const std::vector<V>& host) {
  auto d = std::make_unique<DeviceArray<V>>(static_cast<int64_t>(host.size()));
  d->UploadRaw(host);
  return d;
}

}  // namespace tandem::kernels::cuda::testing
