#include "store/sqlite/sqlite_store_impl.h"

namespace pushhook::store::sqlite {

std::string Qualified(std::string_view columns, std::string_view prefix) {
  std::string out(prefix);
  for (char ch : columns) {
    out.push_back(ch);
    if (ch == ' ') out.append(prefix);
  }
  return out;
}

}  // namespace pushhook::store::sqlite
