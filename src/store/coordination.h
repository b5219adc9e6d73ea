// What several `pushhook serve` nodes sharing one database coordinate through (DESIGN section 7,
// docs/scaling.md): endpoint leases, which say which node delivers for which endpoint; notices
// of the changes other nodes make; and a backstop read for notices that went missing. The
// PostgreSQL store implements it; SQLite serves one node and has none (Store::coordination()).
//
// Thread safety: every method may be called from any thread; Subscribe's listener runs on a
// store thread and must not block.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "model/status.h"
#include "store/store.h"

namespace pushhook::store {

struct NodeInfo {
  std::string node_id;
  int64_t last_seen_ms = 0;
  int endpoints = 0;  // leases it holds
};

// One round of lease keeping by one node: heartbeat, renew, give up `release`, and claim up to
// a fair share (endpoints / live nodes) of endpoints nobody holds, or whose holder stopped
// renewing.
struct LeaseRequest {
  std::string node_id;
  int64_t lease_ms = 10'000;
  std::vector<std::string> release;
  bool leaving = false;  // release everything and drop out of the live nodes; claim nothing
  // Held endpoints whose circuit is open, each with how many more ms it stays open (0 once it
  // lets a probe through): written with the lease, so that every node's endpoint statistics
  // show the state of the node that delivers.
  std::vector<std::pair<std::string, int64_t>> open_circuits;
};

struct LeaseRound {
  std::vector<std::string> held;  // endpoints this node holds after the round
  std::vector<NodeInfo> nodes;    // live nodes, this one included
  int endpoints = 0;              // endpoints in the database (not deleted)
  // How many this node should hold: at most ceil(endpoints / nodes), and floor(endpoints /
  // nodes) while another node has fewer than that. The keeper drains what is above it.
  int share = 0;
};

// A change another node made, as the database's notifications tell it.
struct ChangeNotice {
  enum class Kind {
    kMessages,  // new pending messages for `endpoint_id`, ids from `first_id` to `last_id`
    kEndpoint,  // `endpoint_id` was created, changed or deleted
    kResync,    // notifications may have been lost (the channel broke): look again
  };
  Kind kind = Kind::kResync;
  std::string endpoint_id;
  int64_t first_id = 0;
  int64_t last_id = 0;
};

class Coordination {
 public:
  virtual ~Coordination() = default;

  // One round of lease keeping for `request.node_id` (see LeaseRequest).
  virtual model::StatusOr<LeaseRound> KeepLeases(const LeaseRequest& request) = 0;
  // Calls `listener`, on a store thread, for each change other nodes make.
  virtual void Subscribe(std::function<void(const ChangeNotice&)> listener) = 0;
  // Pending messages of `endpoints` with ids above `after_id`, in id order: the backstop for
  // notices that did not arrive.
  virtual model::StatusOr<std::vector<DueMessage>> LoadPendingSince(
      const std::vector<std::string>& endpoints, int64_t after_id, int limit) = 0;
};

}  // namespace pushhook::store
