// The lease keeper: on a node that shares its database with others, keeps the leases that say
// which endpoints this node delivers for (docs/scaling.md). Every lease/3 it heartbeats, renews
// what it holds, claims its fair share of endpoints nobody holds (ceil(endpoints / live nodes)),
// and gives back what is over that share once the dispatcher has drained it, so that a joining
// node gets work and an endpoint is never delivered from two nodes at once. It tells the
// dispatcher what it gained and lost, turns the store's change notices into messages for the
// dispatcher, and polls behind the notices as a backstop.
//
// Thread safety: status() may be called from any thread; the rest runs on its own thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "delivery/delivery_service.h"
#include "store/coordination.h"
#include "store/store.h"

namespace pushhook::delivery {

struct LeaseOptions {
  std::string node_id;
  std::chrono::milliseconds lease{10'000};
};

struct ClusterStatus {
  std::string node_id;
  int64_t lease_ms = 0;
  std::vector<std::string> owned;
  std::vector<store::NodeInfo> nodes;  // live, from the last successful round
  int endpoints = 0;
  bool connected = false;  // the last round reached the database
};

class LeaseKeeper {
 public:
  LeaseKeeper(store::Store& store, store::Coordination& coordination, DeliveryService& delivery,
              LeaseOptions options);
  ~LeaseKeeper();
  LeaseKeeper(const LeaseKeeper&) = delete;
  LeaseKeeper& operator=(const LeaseKeeper&) = delete;

  void Start();
  // Stops renewing. With `release`, first gives every lease back, so that other nodes take over
  // at once instead of after the lease time (a clean shutdown, after deliveries finished).
  void Stop(bool release);

  ClusterStatus status() const;

 private:
  void Run();
  void Round();
  void OnNotice(const store::ChangeNotice& notice);
  bool Owns(const std::string& endpoint_id) const;
  void Backstop();

  store::Store& store_;
  store::Coordination& coordination_;
  DeliveryService& delivery_;
  const LeaseOptions options_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;        // guarded by mu_
  bool wake_ = false;            // guarded by mu_: a new endpoint may want an owner
  std::set<std::string> owned_;  // guarded by mu_: delivering for these
  ClusterStatus status_;         // guarded by mu_

  // Keeper thread only.
  std::set<std::string> draining_;  // given up by the dispatcher, lease not yet released
  std::chrono::steady_clock::time_point last_renewed_{};
  bool failed_ = false;             // a round failed since the last good one
  std::deque<int64_t> watermarks_;  // dispatcher's max admitted id, one per round
  std::thread thread_;
};

}  // namespace pushhook::delivery
