// Group commit, shared by the stores: writes queue up while the previous transaction syncs, and
// one writer thread takes everything queued as the next transaction. The store supplies the
// commit (how a batch becomes one transaction); the queue supplies the thread, the bound on
// queued work (a full queue refuses at once instead of growing), and the synchronous form that
// the admin paths use.
//
// Thread safety: Enqueue() and Run() may be called from any thread; `commit` runs on the writer
// thread only, as do the operations' `apply` functions. `done` callbacks run on the writer
// thread (or the caller's, when refused) and must not block.
#pragma once

#include <pthread.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "model/status.h"
#include "util/failure_report.h"

namespace pushhook::store {

// Whether `s` says the database failed (busy, full, gone, broken) rather than that a write
// was refused on its merits (a constraint, a missing row).
inline bool IsDatabaseFailure(const model::Status& s) {
  return s.code() == model::StatusCode::kUnavailable || s.code() == model::StatusCode::kInternal;
}

template <typename Connection>
struct WriteOp {
  std::function<model::Status(Connection&)> apply;
  std::function<void(model::Status)> done;
  size_t weight = 1;  // events it carries, against the queue's bound
  // Whether this write may fail on its own, its batch committing without it: a store that
  // shares one transaction between admin writes (which can fail on a constraint) and appends
  // keeps each isolated write in a savepoint. Appends and attempt records fail only when the
  // database does, and then their whole transaction fails with them.
  bool isolated = false;
  // Whether nobody waits on this write's durability (attempt records: the webhook was already
  // sent), so that it may wait a few milliseconds to share a commit with others.
  bool deferrable = false;
  // Whether its commit must reach the disk, or only survive this process: attempt records and a
  // batch's members (AssignBatch) lost to a power cut cost duplicates at the receiver, never an
  // event, and a transaction of nothing else commits without waiting for a sync.
  bool must_sync = true;
};

// Whether any write of `batch` must reach the disk when it commits.
template <typename Op>
bool AnyMustSync(const std::vector<Op>& batch) {
  for (const Op& op : batch) {
    if (op.must_sync) return true;
  }
  return false;
}

template <typename Connection>
class WriteQueue {
 public:
  using Op = WriteOp<Connection>;
  // Makes one transaction of `batch`; (*results)[i] is the outcome of batch[i]. Returns the
  // transaction's own outcome: not ok when it did not commit (a full disk, a database away).
  using Commit =
      std::function<model::Status(std::vector<Op>& batch, std::vector<model::Status>* results)>;

  WriteQueue(size_t max_weight, Commit commit)
      : max_weight_(max_weight), commit_(std::move(commit)) {}
  ~WriteQueue() { Stop(); }
  WriteQueue(const WriteQueue&) = delete;
  WriteQueue& operator=(const WriteQueue&) = delete;

  void Start(const char* thread_name) {
    thread_ = std::thread([this, thread_name] {
      pthread_setname_np(pthread_self(), thread_name);
      Loop();
    });
  }

  // Finishes what is queued, then stops the writer thread.
  void Stop() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

  void Enqueue(Op op) {
    {
      std::lock_guard lock(mu_);
      if (!stopping_ && pending_weight_ + op.weight <= max_weight_) {
        pending_weight_ += op.weight;
        if (!op.deferrable) ++urgent_;
        queue_.push_back(std::move(op));
        cv_.notify_one();
        return;
      }
    }
    // Refused outside the lock: the callback may do anything.
    op.done(model::Status(model::StatusCode::kUnavailable,
                          "the store's write queue is full; retry shortly"));
  }

  // Transactions that did not commit so far: every one is also logged, at most one line per
  // interval (util::FailureReport), so that an operator hears of a full disk from the log and
  // /metrics, not from clients.
  uint64_t commit_failures() const { return commit_failures_.count(); }

  // Runs `apply` in the next transaction, isolated, and waits until it is durable.
  model::Status Run(std::function<model::Status(Connection&)> apply) {
    std::promise<model::Status> promise;
    auto future = promise.get_future();
    Op op;
    op.apply = std::move(apply);
    op.done = [&promise](model::Status s) { promise.set_value(std::move(s)); };
    op.isolated = true;
    Enqueue(std::move(op));
    return future.get();
  }

 private:
  void Loop() {
    std::vector<Op> batch;
    std::vector<model::Status> results;
    for (;;) {
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
        if (queue_.empty()) return;  // stopping, and nothing left to write
        // Only deferrable writes: let more gather, so one commit (one sync, each page written
        // to the WAL once) carries many. Anything that someone waits on ends the wait.
        if (urgent_ == 0) {
          cv_.wait_for(lock, kDeferFor, [this] {
            return stopping_ || urgent_ > 0 || pending_weight_ >= kDeferUpTo;
          });
        }
        // Everything queued while the previous transaction was syncing joins this one.
        batch.assign(std::make_move_iterator(queue_.begin()),
                     std::make_move_iterator(queue_.end()));
        queue_.clear();
        pending_weight_ = 0;
        urgent_ = 0;
      }
      if (model::Status s = commit_(batch, &results); !s.ok()) {
        const auto now = std::chrono::system_clock::now().time_since_epoch();
        commit_failures_.Report(std::chrono::duration_cast<std::chrono::milliseconds>(now).count(),
                                s.message(), {{"writes", batch.size()}});
      }
      for (size_t i = 0; i < batch.size(); ++i) {
        if (batch[i].done) batch[i].done(std::move(results[i]));
      }
      batch.clear();
    }
  }

  static constexpr std::chrono::milliseconds kDeferFor{5};
  static constexpr size_t kDeferUpTo = 1000;

  const size_t max_weight_;
  const Commit commit_;
  util::FailureReport commit_failures_{"a transaction of the store did not commit"};
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Op> queue_;       // guarded by mu_
  size_t pending_weight_ = 0;  // guarded by mu_
  size_t urgent_ = 0;          // queued writes that are not deferrable; guarded by mu_
  bool stopping_ = false;      // guarded by mu_
  std::thread thread_;
};

}  // namespace pushhook::store
