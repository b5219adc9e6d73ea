#include "delivery/lease_keeper.h"

#include <pthread.h>

#include <algorithm>
#include <utility>

#include "util/log.h"

namespace pushhook::delivery {
namespace {

// The backstop polls for pending messages above the highest id this node had admitted this
// many rounds ago: a message whose transaction took longer than that to commit after taking
// its id, and whose notice was lost too, waits for the next resync.
constexpr size_t kBackstopLagRounds = 3;
constexpr int kBackstopPage = 10'000;

}  // namespace

LeaseKeeper::LeaseKeeper(store::Store& store, store::Coordination& coordination,
                         DeliveryService& delivery, LeaseOptions options)
    : store_(store),
      coordination_(coordination),
      delivery_(delivery),
      options_(std::move(options)) {
  status_.node_id = options_.node_id;
  status_.lease_ms = options_.lease.count();
}

LeaseKeeper::~LeaseKeeper() { Stop(false); }

void LeaseKeeper::Start() {
  coordination_.Subscribe([this](const store::ChangeNotice& notice) { OnNotice(notice); });
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "ph-lease");
    Run();
  });
}

void LeaseKeeper::Stop(bool release) {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (!release) return;
  store::LeaseRequest request;
  request.node_id = options_.node_id;
  request.lease_ms = options_.lease.count();
  request.leaving = true;
  if (auto round = coordination_.KeepLeases(request); !round.ok()) {
    util::Log(util::LogLevel::kWarn, "leases not released; they expire by themselves",
              {{"error", round.status().message()}});
  }
}

ClusterStatus LeaseKeeper::status() const {
  std::lock_guard lock(mu_);
  ClusterStatus status = status_;
  status.owned.assign(owned_.begin(), owned_.end());
  return status;
}

bool LeaseKeeper::Owns(const std::string& endpoint_id) const {
  std::lock_guard lock(mu_);
  return owned_.contains(endpoint_id);
}

void LeaseKeeper::OnNotice(const store::ChangeNotice& notice) {
  using Kind = store::ChangeNotice::Kind;
  switch (notice.kind) {
    case Kind::kMessages: {
      if (!Owns(notice.endpoint_id)) return;
      // The ids of one transaction's messages for this endpoint: read no further than its
      // last, or this node would also take messages of later transactions - its own among
      // them, which its ingest hands over with their events, and which would then be read
      // back from the store. Other nodes' messages in the same range come too; the dispatcher
      // admits each id once.
      const int64_t span = notice.last_id - notice.first_id + 1;
      auto due =
          store_.LoadPendingForEndpoint(notice.endpoint_id, notice.first_id - 1,
                                        static_cast<int>(std::clamp<int64_t>(span, 1, 100'000)));
      if (!due.ok()) return;  // the backstop finds them
      std::erase_if(*due, [&](const store::DueMessage& m) { return m.id > notice.last_id; });
      if (!due->empty()) delivery_.Enqueue(std::move(due.value()));
      return;
    }
    case Kind::kEndpoint:
      delivery_.EndpointChanged(notice.endpoint_id);
      {
        std::lock_guard lock(mu_);
        wake_ = true;
      }
      cv_.notify_all();
      return;
    case Kind::kResync:
      delivery_.Resync();
      return;
  }
}

void LeaseKeeper::Run() {
  const auto period = options_.lease / 3;
  std::unique_lock lock(mu_);
  while (!stopping_) {
    wake_ = false;
    lock.unlock();
    Round();
    Backstop();
    lock.lock();
    cv_.wait_for(lock, period, [this] { return stopping_ || wake_; });
  }
}

void LeaseKeeper::Round() {
  store::LeaseRequest request;
  request.node_id = options_.node_id;
  request.lease_ms = options_.lease.count();
  std::vector<std::string> drained;
  for (const std::string& id : draining_) {
    if (delivery_.Runtime(id).in_flight == 0) drained.push_back(id);
  }
  request.release = drained;
  std::vector<std::string> owned;
  {
    std::lock_guard lock(mu_);
    owned.assign(owned_.begin(), owned_.end());
  }
  for (const std::string& id : owned) {
    const EndpointRuntime runtime = delivery_.Runtime(id);
    if (runtime.circuit_opened) request.open_circuits.emplace_back(id, runtime.circuit_open_for_ms);
  }
  const auto started = std::chrono::steady_clock::now();
  auto round = coordination_.KeepLeases(request);
  if (!round.ok()) {
    // Without a renewal the leases run out, and another node may take them: stop delivering
    // before that can happen, with a third of the lease to spare.
    std::vector<std::string> lost;
    {
      std::lock_guard lock(mu_);
      if (status_.connected) {
        util::Log(util::LogLevel::kWarn, "cannot renew endpoint leases",
                  {{"error", round.status().message()}});
      }
      status_.connected = false;
      failed_ = true;
      // Measured now, not from the round's start: a round that hung until its leases ran out
      // must not leave them taken for held.
      if (std::chrono::steady_clock::now() - last_renewed_ >= options_.lease * 2 / 3 &&
          !owned_.empty()) {
        lost.assign(owned_.begin(), owned_.end());
        owned_.clear();
      }
    }
    if (!lost.empty()) {
      util::Log(util::LogLevel::kWarn, "leases expiring unrenewed: delivery paused",
                {{"endpoints", lost.size()}});
      delivery_.SetOwnership({}, std::move(lost));
    }
    return;
  }
  last_renewed_ = started;
  for (const std::string& id : drained) draining_.erase(id);
  const bool reconnected = std::exchange(failed_, false);

  std::set<std::string> held(round->held.begin(), round->held.end());
  for (const std::string& id : draining_) held.erase(id);
  const size_t keep = static_cast<size_t>(std::max(0, round->share));
  std::vector<std::string> gained;
  std::vector<std::string> lost;
  {
    std::lock_guard lock(mu_);
    // Above its share (a node joined, or another has too few): drain the excess, and release
    // it in a later round once nothing is in flight for it.
    while (held.size() > keep) {
      auto last = std::prev(held.end());
      draining_.insert(*last);
      held.erase(last);
    }
    for (const std::string& id : held) {
      if (!owned_.contains(id)) gained.push_back(id);
    }
    for (const std::string& id : owned_) {
      if (!held.contains(id)) lost.push_back(id);
    }
    owned_ = std::move(held);
    if (!status_.connected) {
      util::Log(util::LogLevel::kInfo, "endpoint leases renewed",
                {{"node_id", options_.node_id}, {"owned", owned_.size()}});
    }
    status_.connected = true;
    status_.nodes = std::move(round->nodes);
    status_.endpoints = round->endpoints;
  }
  if (!gained.empty() || !lost.empty()) {
    util::Log(util::LogLevel::kInfo, "endpoint ownership changed",
              {{"node_id", options_.node_id}, {"gained", gained.size()}, {"lost", lost.size()}});
    delivery_.SetOwnership(std::move(gained), std::move(lost));
  }
  // Notices sent while this node could not reach the database are lost, and the backstop only
  // looks at recent ids: after an outage, look again at everything this node owns.
  if (reconnected) delivery_.Resync();
}

void LeaseKeeper::Backstop() {
  watermarks_.push_back(delivery_.max_admitted_id());
  if (watermarks_.size() <= kBackstopLagRounds) return;
  const int64_t after = watermarks_.front();
  watermarks_.pop_front();
  std::vector<std::string> owned;
  {
    std::lock_guard lock(mu_);
    owned.assign(owned_.begin(), owned_.end());
  }
  if (owned.empty()) return;
  auto due = coordination_.LoadPendingSince(owned, after, kBackstopPage);
  if (due.ok() && !due->empty()) delivery_.Enqueue(std::move(due.value()));
}

}  // namespace pushhook::delivery
