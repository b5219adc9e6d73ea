// Microbenchmarks of the durable write path, per event: what SQLite itself does with rows like
// ours, and what the store does around it. Together they say how far ingest's writer is from
// the floor that this schema and this disk allow (BENCHMARKS.md, figure 2). Wall time, because
// the store's work runs on its writer thread; every database is a fresh file in a temporary
// folder, written with synchronous=FULL in WAL mode as `serve --durability full` does.

#include <benchmark/benchmark.h>
#include <sqlite3.h>

#include <cstdint>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include "ingest/event_parser.h"
#include "model/event.h"
#include "store/open_store.h"
#include "store/store.h"
#include "util/testing/temp_dir.h"

namespace {

namespace model = pushhook::model;
namespace store = pushhook::store;

using pushhook::util::testing::TempDir;

constexpr int kBatch = 1000;

// As the store configures SQLite (store/sqlite/sqlite_db.cc), before anything here opens it:
// no global mutex around every allocation's statistics.
const int kMemStatusOff = sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
constexpr int64_t kNowMs = 1'795'000'000'000;

model::Event SampleEvent() {
  const std::string body =
      R"({"action":"Click","cookie_id":"7e32b7a1-acfc-45db-83fb-766d2a8a2bce","cid":"1123123",)"
      R"("notification_title":"My Campaign Name: your cart is waiting, 20% off until Sunday",)"
      R"("reference_id":"123422","utm_campaign":"recover_carts","utm_content":"Article",)"
      R"("utm_medium":"push_notifications","utm_source":"izooto","utm_term":"notification3",)"
      R"("clicked_button":2})";
  auto parsed = pushhook::ingest::ParseEvents(body, pushhook::ingest::BodyKind::kJson, kNowMs);
  return std::get<pushhook::ingest::ParsedBatch>(parsed).events.at(0);
}

void Check(sqlite3* db, int rc, benchmark::State& state) {
  if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW) {
    state.SkipWithError(sqlite3_errmsg(db));
  }
}

sqlite3* OpenDurable(const std::string& path, benchmark::State& state) {
  sqlite3* db = nullptr;
  Check(db, sqlite3_open(path.c_str(), &db), state);
  Check(db,
        sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL", nullptr, nullptr,
                     nullptr),
        state);
  return db;
}

// Runs `insert` (a prepared statement) kBatch times per transaction, binding with `bind`.
template <typename Bind>
void InsertBatches(benchmark::State& state, sqlite3* db, const char* sql, Bind bind) {
  sqlite3_stmt* insert = nullptr;
  Check(db, sqlite3_prepare_v2(db, sql, -1, &insert, nullptr), state);
  for (auto _ : state) {
    sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr);
    for (int i = 0; i < kBatch; ++i) {
      bind(insert, i);
      Check(db, sqlite3_step(insert), state);
      sqlite3_reset(insert);
    }
    Check(db, sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr), state);
  }
  sqlite3_finalize(insert);
  state.SetItemsProcessed(state.iterations() * kBatch);
}

// The floor: 350-byte rows of one blob, the reference that issue 6 quotes (390 k rows/s).
void BM_SqliteInsertBlob350(benchmark::State& state) {
  TempDir dir{"pushhook-bench"};
  sqlite3* db = OpenDurable(dir.File("blob.db"), state);
  sqlite3_exec(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, body BLOB NOT NULL)", nullptr, nullptr,
               nullptr);
  const std::string body(350, 'x');
  InsertBatches(state, db, "INSERT INTO t(body) VALUES(?)", [&](sqlite3_stmt* st, int) {
    sqlite3_bind_blob(st, 1, body.data(), static_cast<int>(body.size()), SQLITE_STATIC);
  });
  sqlite3_close(db);
}
BENCHMARK(BM_SqliteInsertBlob350)->UseRealTime()->Unit(benchmark::kMicrosecond);

// Rows of the events table (schema version 1, its partial unique index included), with and
// without AUTOINCREMENT, bound column by column as the store binds them.
void BM_SqliteInsertEventRow(benchmark::State& state) {
  const bool autoincrement = state.range(0) != 0;
  TempDir dir{"pushhook-bench"};
  sqlite3* db = OpenDurable(dir.File("events.db"), state);
  const std::string ddl = std::string("CREATE TABLE events(id INTEGER PRIMARY KEY") +
                          (autoincrement ? " AUTOINCREMENT" : "") +
                          R"sql(, site_id TEXT NOT NULL, event_id TEXT, action INTEGER NOT NULL,
  cookie_id TEXT NOT NULL, cid TEXT NOT NULL, notification_title TEXT NOT NULL,
  reference_id TEXT NOT NULL, utm_campaign TEXT NOT NULL, utm_content TEXT NOT NULL,
  utm_medium TEXT NOT NULL, utm_source TEXT NOT NULL, utm_term TEXT NOT NULL,
  clicked_button INTEGER NOT NULL, occurred_at INTEGER NOT NULL, received_at INTEGER NOT NULL);
CREATE UNIQUE INDEX events_by_client_id ON events(site_id, event_id) WHERE event_id IS NOT NULL;
)sql";
  Check(db, sqlite3_exec(db, ddl.c_str(), nullptr, nullptr, nullptr), state);
  const model::Event e = SampleEvent();
  const std::string site = "site_jO2Ky7ZMg2wmhwMn";
  const auto text = [](sqlite3_stmt* st, int i, const std::string& s) {
    sqlite3_bind_text(st, i, s.data(), static_cast<int>(s.size()), SQLITE_STATIC);
  };
  InsertBatches(state, db,
                "INSERT OR IGNORE INTO events(site_id, event_id, action, cookie_id, cid, "
                "notification_title, reference_id, utm_campaign, utm_content, utm_medium, "
                "utm_source, utm_term, clicked_button, occurred_at, received_at) "
                "VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                [&](sqlite3_stmt* st, int) {
                  text(st, 1, site);
                  sqlite3_bind_null(st, 2);
                  sqlite3_bind_int64(st, 3, 1);
                  text(st, 4, e.cookie_id);
                  text(st, 5, e.cid);
                  text(st, 6, e.notification_title);
                  text(st, 7, e.reference_id);
                  text(st, 8, e.utm_campaign);
                  text(st, 9, e.utm_content);
                  text(st, 10, e.utm_medium);
                  text(st, 11, e.utm_source);
                  text(st, 12, e.utm_term);
                  sqlite3_bind_int64(st, 13, e.clicked_button);
                  sqlite3_bind_int64(st, 14, e.occurred_at_ms);
                  sqlite3_bind_int64(st, 15, kNowMs);
                });
  sqlite3_close(db);
}
BENCHMARK(BM_SqliteInsertEventRow)
    ->ArgName("autoincrement")
    ->Arg(1)
    ->Arg(0)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

// A fresh SQLite store in a temporary folder, with one site and `endpoints` endpoints on it;
// null (and the benchmark skipped) if any of that fails.
struct BenchStore {
  TempDir dir{"pushhook-bench"};  // first in, last out: the store closes before its folder goes
  std::unique_ptr<store::Store> store;
  std::string site_id;
};

std::unique_ptr<BenchStore> OpenBenchStore(benchmark::State& state, int endpoints,
                                           bool aggregates = true) {
  auto bench = std::make_unique<BenchStore>();
  store::StoreOptions options;
  options.database = "sqlite://" + bench->dir.File("pushhook.db");
  options.aggregates = aggregates;
  auto opened = store::OpenStore(options);
  if (!opened.ok()) {
    state.SkipWithError(opened.status().message().c_str());
    return nullptr;
  }
  bench->store = std::move(*opened);
  auto site = bench->store->CreateSite("bench");
  if (!site.ok()) {
    state.SkipWithError(site.status().message().c_str());
    return nullptr;
  }
  bench->site_id = site->id;
  for (int i = 0; i < endpoints; ++i) {
    store::Endpoint endpoint;
    endpoint.site_id = site->id;
    endpoint.url = "http://127.0.0.1:9/e/" + std::to_string(i);
    endpoint.secret = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYX";
    if (auto made = bench->store->CreateEndpoint(endpoint); !made.ok()) {
      state.SkipWithError(made.status().message().c_str());
      return nullptr;
    }
  }
  return bench;
}

// AppendEvents, waited for until its transaction is durable.
model::StatusOr<store::AppendResult> AppendAndWait(BenchStore& bench,
                                                   const std::vector<model::Event>& events) {
  std::promise<model::StatusOr<store::AppendResult>> done;
  bench.store->AppendEvents(
      bench.site_id, events, kNowMs,
      [&done](model::StatusOr<store::AppendResult> r) { done.set_value(std::move(r)); });
  return done.get_future().get();
}

// The store's AppendEvents, 1,000 events per call and waited for: the events, a message per
// endpoint (0 or 1), statistics (range(1) = 1) and the commit. The HTTP side is not in it.
void BM_StoreAppend(benchmark::State& state) {
  auto bench = OpenBenchStore(state, static_cast<int>(state.range(0)), state.range(1) != 0);
  if (bench == nullptr) return;
  const std::vector<model::Event> batch(kBatch, SampleEvent());
  for (auto _ : state) {
    auto result = AppendAndWait(*bench, batch);
    if (!result.ok() || result->accepted != kBatch) {
      state.SkipWithError("append failed");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
}
BENCHMARK(BM_StoreAppend)
    ->ArgNames({"endpoints", "aggregates"})
    ->Args({0, 1})
    ->Args({0, 0})
    ->Args({1, 1})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

// What figure 1 asks of the writer: 64 requests of one event each, queued at once as 64
// keep-alive connections would, group-committed; per event (= per request). range(0) = statistics.
void BM_StoreAppendSingles(benchmark::State& state) {
  constexpr int kRequests = 64;
  auto bench = OpenBenchStore(state, 0, state.range(0) != 0);
  if (bench == nullptr) return;
  store::Store& s = *bench->store;
  const model::Event event = SampleEvent();
  for (auto _ : state) {
    std::vector<std::future<bool>> done;
    for (int i = 0; i < kRequests; ++i) {
      auto promise = std::make_shared<std::promise<bool>>();
      done.push_back(promise->get_future());
      s.AppendEvents(bench->site_id, {event}, kNowMs,
                     [promise](model::StatusOr<store::AppendResult> r) {
                       promise->set_value(r.ok() && r->accepted == 1);
                     });
    }
    for (auto& f : done) {
      if (!f.get()) state.SkipWithError("append failed");
    }
  }
  state.SetItemsProcessed(state.iterations() * kRequests);
}
BENCHMARK(BM_StoreAppendSingles)
    ->ArgName("aggregates")
    ->Arg(1)
    ->Arg(0)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

// The record of `m`'s first attempt, answered 204 in 0.9 ms.
store::AttemptRecord Delivered(const store::DueMessage& m) {
  store::AttemptRecord r;
  r.message_id = m.id;
  r.endpoint_id = m.endpoint_id;
  r.attempt = 1;
  r.at_ms = kNowMs;
  r.status_code = 204;
  r.latency_us = 900;
  r.new_status = store::MessageStatus::kDelivered;
  r.next_attempt_ms = kNowMs;
  return r;
}

// A delivery's whole life in the store, per message: stored with its event (1 endpoint), then
// its successful attempt recorded, in groups of range(0) records as the dispatcher hands them
// over (every completion since its last turn), all groups queued at once.
void BM_StoreDeliver(benchmark::State& state) {
  const size_t group = static_cast<size_t>(state.range(0));
  auto bench = OpenBenchStore(state, 1);
  if (bench == nullptr) return;
  store::Store& s = *bench->store;
  const std::vector<model::Event> batch(kBatch, SampleEvent());
  for (auto _ : state) {
    auto result = AppendAndWait(*bench, batch);
    if (!result.ok() || result->messages.size() != kBatch) {
      state.SkipWithError("append failed");
      break;
    }
    std::vector<std::future<model::Status>> recorded;
    std::vector<store::AttemptRecord> records;
    for (size_t i = 0; i < result->messages.size(); ++i) {
      records.push_back(Delivered(result->messages[i]));
      if (records.size() == group || i + 1 == result->messages.size()) {
        auto done = std::make_shared<std::promise<model::Status>>();
        recorded.push_back(done->get_future());
        s.RecordAttempts(std::move(records), [done](model::Status st) { done->set_value(st); });
        records.clear();
      }
    }
    for (auto& f : recorded) {
      if (!f.get().ok()) state.SkipWithError("record failed");
    }
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
}
BENCHMARK(BM_StoreDeliver)
    ->ArgName("group")
    ->Arg(1)
    ->Arg(32)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

// The same for a batching endpoint, as figure 11 asks it of the store: events stored in
// requests of 100, each request's messages fixed as one batch (AssignBatch) and, once sent,
// recorded together, the first record counting the request.
void BM_StoreDeliverBatched(benchmark::State& state) {
  constexpr size_t kPerRequest = 100;
  auto bench = OpenBenchStore(state, 1);
  if (bench == nullptr) return;
  store::Store& s = *bench->store;
  const std::vector<model::Event> request(kPerRequest, SampleEvent());
  for (auto _ : state) {
    std::vector<std::future<model::Status>> recorded;
    for (size_t sent = 0; sent < kBatch; sent += kPerRequest) {
      auto result = AppendAndWait(*bench, request);
      if (!result.ok() || result->messages.size() != kPerRequest) {
        state.SkipWithError("append failed");
        return;
      }
      std::vector<int64_t> members;
      for (const store::DueMessage& m : result->messages) members.push_back(m.id);
      std::promise<model::Status> assigned;
      s.AssignBatch(members, members.front(), [&](model::Status st) { assigned.set_value(st); });
      if (!assigned.get_future().get().ok()) {
        state.SkipWithError("batch assignment failed");
        return;
      }
      std::vector<store::AttemptRecord> records;
      for (const store::DueMessage& m : result->messages) {
        records.push_back(Delivered(m));
        records.back().counts_request = records.size() == 1;
      }
      auto done = std::make_shared<std::promise<model::Status>>();
      recorded.push_back(done->get_future());
      s.RecordAttempts(std::move(records), [done](model::Status st) { done->set_value(st); });
    }
    for (auto& f : recorded) {
      if (!f.get().ok()) state.SkipWithError("record failed");
    }
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
}
BENCHMARK(BM_StoreDeliverBatched)->UseRealTime()->Unit(benchmark::kMicrosecond);

}  // namespace
