// Time as a dependency: code that schedules (retries, timestamps, leases) takes a Clock& so that
// tests can drive time. SystemClock is safe from any thread.
#pragma once

#include <chrono>
#include <cstdint>

namespace pushhook::model {

class Clock {
 public:
  virtual ~Clock() = default;
  // Wall-clock time, Unix milliseconds.
  virtual int64_t NowMs() const = 0;
};

class SystemClock final : public Clock {
 public:
  int64_t NowMs() const override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
};

}  // namespace pushhook::model
