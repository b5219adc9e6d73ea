// The Store on PostgreSQL, for several `pushhook serve` nodes sharing one database: group commit
// through one writer connection per node (a batch's events and messages in one statement each),
// a pool of connections for reads and admin writes, endpoint leases that divide delivery among
// live nodes, and LISTEN/NOTIFY to tell the owner of an endpoint about messages another node
// stored. docs/scaling.md describes the design and its limits.
//
// Thread safety: all public methods may be called from any thread (see store.h).
#pragma once

#include <memory>

#include "store/store.h"

namespace pushhook::store::postgres {

// Connects to `url` (postgres://...), runs the migrations, and starts listening.
model::StatusOr<std::unique_ptr<Store>> OpenPostgresStore(const std::string& url,
                                                          const StoreOptions& options);

// The libpq this binary runs with ("15.10").
std::string LibraryVersion();

}  // namespace pushhook::store::postgres
