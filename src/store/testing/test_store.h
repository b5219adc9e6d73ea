// A real SQLite store in a test's temporary folder, for the tests of what sits on a store (the
// dispatcher, the scheduler, the reporting API) rather than of the store itself. Opening the
// same folder again is a restart. For tests only: it throws when the store cannot open.
#pragma once

#include <memory>
#include <stdexcept>

#include "store/open_store.h"
#include "store/store.h"
#include "util/testing/temp_dir.h"

namespace pushhook::store::testing {

inline std::unique_ptr<Store> OpenTestStore(const util::testing::TempDir& dir) {
  StoreOptions options;
  options.database = "sqlite://" + dir.File("test.db");
  auto opened = OpenStore(options);
  if (!opened.ok())
    throw std::runtime_error("cannot open the test store: " + opened.status().message());
  return std::move(opened.value());
}

}  // namespace pushhook::store::testing
