// The ids of the events and messages tables, handed out by the store's writer rather than by
// SQLite. A message's id is its webhook-id (msg_…), which receivers de-duplicate by, so an id
// must never be given twice, even after retention deleted the row that had it and the process
// restarted. SQLite's AUTOINCREMENT keeps that promise by reading and rewriting
// sqlite_sequence in every INSERT statement: a tenth of the writer's instructions per delivered
// message (callgrind, BM_StoreDeliver). The writer
// instead takes ids from memory and, in a transaction whose ids pass the mark in meta, moves
// the mark a block ahead, committed with them: every committed id is below the mark, and a
// restart resumes at the mark (the rest of the block is skipped).
#pragma once

#include <cstdint>
#include <string>

#include "model/status.h"
#include "store/sqlite/sqlite_db.h"

namespace pushhook::store::sqlite {

class RowIds {
 public:
  // `meta_key` names the mark in the meta table: the first id not yet reserved.
  explicit RowIds(std::string meta_key) : meta_key_(std::move(meta_key)) {}

  // At start-up, after the migrations: resumes at the mark.
  model::Status Load(Connection& c);

  // The id the next row gets; Take() when a row got it (an INSERT OR IGNORE may not use it).
  int64_t Peek() const { return next_; }
  int64_t Take() { return next_++; }

  // Inside the transaction, after its last insert: moves the mark past the ids it took.
  model::Status Reserve(Connection& c);
  // After the transaction: whether the mark moved with it.
  void Committed() { mark_ = pending_mark_; }
  void RolledBack() { pending_mark_ = mark_; }

  // Ids come in blocks of this many: one meta write per block, at most one block skipped per
  // restart.
  static constexpr int64_t kBlock = int64_t{1} << 16;

 private:
  const std::string meta_key_;
  int64_t next_ = 1;
  int64_t mark_ = 1;          // committed: every id given out before is below it
  int64_t pending_mark_ = 1;  // written by the transaction being built
};

}  // namespace pushhook::store::sqlite
