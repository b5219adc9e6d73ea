#include "model/random.h"

#include <openssl/rand.h>

#include <stdexcept>

namespace pushhook::model {

std::string RandomBytes(size_t n) {
  std::string out(n, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1) {
    throw std::runtime_error("RAND_bytes failed");
  }
  return out;
}

std::string RandomToken(size_t length) {
  static constexpr char kAlphabet[] =
      "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  std::string out(length, '\0');
  size_t filled = 0;
  unsigned char raw[64];
  while (filled < length) {
    if (RAND_bytes(raw, sizeof(raw)) != 1) throw std::runtime_error("RAND_bytes failed");
    for (unsigned char c : raw) {
      // 248 = 4 * 62: rejecting the top bytes keeps every character equally likely.
      if (c >= 248 || filled == length) continue;
      out[filled++] = kAlphabet[c % 62];
    }
  }
  return out;
}

}  // namespace pushhook::model
