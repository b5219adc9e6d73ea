#include "store/postgres/postgres_store_impl.h"

namespace pushhook::store::postgres {

std::string HexBytes(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out = "\\x";
  out.reserve(2 + 2 * bytes.size());
  for (unsigned char ch : bytes) {
    out.push_back(kDigits[ch >> 4]);
    out.push_back(kDigits[ch & 15]);
  }
  return out;
}

std::vector<DueMessage> ReadDue(const Result& r) {
  std::vector<DueMessage> out;
  out.reserve(static_cast<size_t>(r.rows()));
  for (int i = 0; i < r.rows(); ++i) {
    out.push_back(DueMessage{r.Int(i, 0),
                             r.String(i, 1),
                             r.Int(i, 2),
                             static_cast<int>(r.Int(i, 3)),
                             {},
                             r.Int(i, 4),
                             static_cast<int>(r.Int(i, 5))});
  }
  return out;
}

}  // namespace pushhook::store::postgres
