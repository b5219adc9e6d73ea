#include "store/sqlite/row_ids.h"

#include <charconv>

namespace pushhook::store::sqlite {

model::Status RowIds::Load(Connection& c) {
  auto st = c.Prepare("SELECT value FROM meta WHERE key = ?");
  if (!st.ok()) return st.status();
  (*st)->Bind(1, meta_key_);
  model::Status step;
  std::string value;
  if ((*st)->Step(&step)) value = (*st)->Text(0);
  (*st)->Reset();
  if (!step.ok()) return step;
  int64_t mark = 0;
  const auto [end, error] = std::from_chars(value.data(), value.data() + value.size(), mark);
  if (error != std::errc() || end != value.data() + value.size() || mark < 1) {
    return model::Internal("the database's meta '" + meta_key_ + "' is not an id: '" + value + "'");
  }
  next_ = mark_ = pending_mark_ = mark;
  return model::Status::Ok();
}

model::Status RowIds::Reserve(Connection& c) {
  if (next_ <= pending_mark_) return model::Status::Ok();
  const int64_t mark = next_ + kBlock;
  auto st = c.Prepare("UPDATE meta SET value = ? WHERE key = ?");
  if (!st.ok()) return st.status();
  model::Status s = (*st)->Bind(1, std::to_string(mark)).Bind(2, meta_key_).Run();
  if (s.ok() && c.Changes() != 1) {
    s = model::Internal("the database has no meta '" + meta_key_ + "'");
  }
  if (s.ok()) pending_mark_ = mark;
  return s;
}

}  // namespace pushhook::store::sqlite
