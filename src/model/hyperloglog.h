// A HyperLogLog sketch for counting unique subscribers (DESIGN section 6): 2^12 one-byte
// registers (4 KiB), standard error 1.04 / sqrt(4096) = 1.6 %, with linear counting for small
// sets so that small counts are near exact. Sketches merge, so per-hour sketches add up to any
// range. A plain value: not thread safe, copy freely.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace pushhook::model {

class HyperLogLog {
 public:
  static constexpr int kPrecision = 12;
  static constexpr size_t kRegisters = size_t{1} << kPrecision;

  HyperLogLog() { registers_.fill(0); }

  void Add(std::string_view item) { AddHash(Hash64(item)); }
  void AddHash(uint64_t hash);
  void Merge(const HyperLogLog& other);
  double Estimate() const;
  bool empty() const;

  // The registers as bytes, for storage: all of them, or only those set when they are few
  // (hyperloglog.cc); Deserialize reads either and refuses anything else.
  std::string Serialize() const;
  static std::optional<HyperLogLog> Deserialize(std::string_view bytes);

  // A 64-bit hash with good avalanche (FNV-1a folded through MurmurHash3's finaliser).
  static uint64_t Hash64(std::string_view item);

 private:
  std::array<uint8_t, kRegisters> registers_;
};

}  // namespace pushhook::model
