#include "model/hyperloglog.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>

namespace pushhook::model {

uint64_t HyperLogLog::Hash64(std::string_view item) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : item) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ULL;
  h ^= h >> 33;
  return h;
}

void HyperLogLog::AddHash(uint64_t hash) {
  const size_t index = hash >> (64 - kPrecision);
  // The rank: position of the first 1 bit in the remaining bits, counted from 1.
  const uint64_t rest = (hash << kPrecision) | (uint64_t{1} << (kPrecision - 1));
  const auto rank = static_cast<uint8_t>(std::countl_zero(rest) + 1);
  registers_[index] = std::max(registers_[index], rank);
}

void HyperLogLog::Merge(const HyperLogLog& other) {
  for (size_t i = 0; i < kRegisters; ++i) {
    registers_[i] = std::max(registers_[i], other.registers_[i]);
  }
}

double HyperLogLog::Estimate() const {
  constexpr double m = static_cast<double>(kRegisters);
  const double alpha = 0.7213 / (1.0 + 1.079 / m);
  double sum = 0;
  int zeros = 0;
  for (uint8_t r : registers_) {
    sum += std::ldexp(1.0, -r);
    zeros += r == 0;
  }
  const double raw = alpha * m * m / sum;
  if (raw <= 2.5 * m && zeros > 0) return m * std::log(m / zeros);  // linear counting
  return raw;
}

bool HyperLogLog::empty() const {
  return std::all_of(registers_.begin(), registers_.end(), [](uint8_t r) { return r == 0; });
}

// Two encodings, told apart by size: dense, the kRegisters registers as bytes; and sparse, 3
// bytes per set register (its index, little endian, then its value), whose size is a multiple
// of 3 and so never kRegisters. Serialize writes sparse up to kSparseMax set registers, where it
// is the smaller, so that the sketch of a small campaign-hour takes a few bytes, not 4 KiB; an
// empty sketch is the empty string. (PostgreSQL's migration 8 writes sparse of any size.)
constexpr size_t kSparseMax = 1024;
static_assert(HyperLogLog::kRegisters % 3 != 0, "the two encodings differ in size");
static_assert(3 * kSparseMax < HyperLogLog::kRegisters, "sparse is written only when smaller");

std::string HyperLogLog::Serialize() const {
  const auto set = static_cast<size_t>(
      std::count_if(registers_.begin(), registers_.end(), [](uint8_t r) { return r != 0; }));
  if (set > kSparseMax) {
    return std::string(reinterpret_cast<const char*>(registers_.data()), registers_.size());
  }
  std::string out;
  out.reserve(3 * set);
  for (size_t i = 0; i < kRegisters; ++i) {
    if (registers_[i] == 0) continue;
    out.push_back(static_cast<char>(i & 0xff));
    out.push_back(static_cast<char>(i >> 8));
    out.push_back(static_cast<char>(registers_[i]));
  }
  return out;
}

std::optional<HyperLogLog> HyperLogLog::Deserialize(std::string_view bytes) {
  HyperLogLog h;
  if (bytes.size() == kRegisters) {
    std::memcpy(h.registers_.data(), bytes.data(), kRegisters);
    return h;
  }
  if (bytes.size() % 3 != 0 || bytes.size() > 3 * kRegisters) return std::nullopt;
  for (size_t at = 0; at < bytes.size(); at += 3) {
    const size_t index = static_cast<uint8_t>(bytes[at]) |
                         (static_cast<size_t>(static_cast<uint8_t>(bytes[at + 1])) << 8);
    if (index >= kRegisters) return std::nullopt;
    h.registers_[index] = static_cast<uint8_t>(bytes[at + 2]);
  }
  return h;
}

}  // namespace pushhook::model
