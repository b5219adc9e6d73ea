// Microbenchmarks of the per-event hot paths: what ingest does to one request body, and what
// delivery does to one message before it reaches the HTTP client. Each number is the CPU cost of
// one call on one core; NOTES.md "Where the time goes" puts them in the end-to-end budget.

#include <benchmark/benchmark.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "ingest/event_parser.h"
#include "model/event.h"
#include "model/hyperloglog.h"
#include "model/payload.h"
#include "model/signature.h"

namespace {

using pushhook::ingest::BodyKind;
using pushhook::ingest::ParsedBatch;
using pushhook::ingest::ParseEvents;
namespace model = pushhook::model;

constexpr int64_t kNowMs = 1'795'000'000'000;

// The sample event of DESIGN section 1 with a longer title: 350 bytes, the same body as
// bench/event.json, which the wrk figures post. No event_id: the server makes one per event.
const std::string& EventBody() {
  static const std::string body =
      R"({"action":"Click","cookie_id":"7e32b7a1-acfc-45db-83fb-766d2a8a2bce","cid":"1123123",)"
      R"("notification_title":"My Campaign Name: your cart is waiting, 20% off until Sunday",)"
      R"("reference_id":"123422","utm_campaign":"recover_carts","utm_content":"Article",)"
      R"("utm_medium":"push_notifications","utm_source":"izooto","utm_term":"notification3",)"
      R"("clicked_button":2})";
  return body;
}

model::Event SampleEvent() {
  auto parsed = ParseEvents(EventBody(), BodyKind::kJson, kNowMs);
  return std::get<ParsedBatch>(parsed).events.at(0);
}

void BM_ParseEvent(benchmark::State& state) {
  const std::string& body = EventBody();
  for (auto _ : state) {
    auto parsed = ParseEvents(body, BodyKind::kJson, kNowMs);
    if (!std::holds_alternative<ParsedBatch>(parsed)) {
      state.SkipWithError("the sample body did not parse");
      break;
    }
    benchmark::DoNotOptimize(parsed);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * body.size()));
  state.counters["body_bytes"] = static_cast<double>(body.size());
}
BENCHMARK(BM_ParseEvent);

// A batch of 1,000 events as one JSON array; reported per event.
void BM_ParseBatch1000(benchmark::State& state) {
  std::string body = "[";
  for (int i = 0; i < 1000; ++i) {
    if (i > 0) body += ',';
    body += EventBody();
  }
  body += ']';
  for (auto _ : state) {
    auto parsed = ParseEvents(body, BodyKind::kJson, kNowMs);
    benchmark::DoNotOptimize(parsed);
  }
  state.SetItemsProcessed(state.iterations() * 1000);
}
BENCHMARK(BM_ParseBatch1000);

void BM_PayloadIzooto(benchmark::State& state) {
  const model::Event event = SampleEvent();
  for (auto _ : state) {
    std::string payload = model::Payload(event, model::PayloadFormat::kIzooto, "");
    benchmark::DoNotOptimize(payload);
  }
}
BENCHMARK(BM_PayloadIzooto);

void BM_PayloadExtended(benchmark::State& state) {
  const model::Event event = SampleEvent();
  for (auto _ : state) {
    std::string payload =
        model::Payload(event, model::PayloadFormat::kExtended, "site_jO2Ky7ZMg2wmhwMn");
    benchmark::DoNotOptimize(payload);
  }
}
BENCHMARK(BM_PayloadExtended);

void BM_Sign(benchmark::State& state) {
  const std::string key = *model::DecodeSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
  const std::string body = model::Payload(SampleEvent(), model::PayloadFormat::kIzooto, "");
  for (auto _ : state) {
    std::string signature = model::Sign(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
    benchmark::DoNotOptimize(signature);
  }
}
BENCHMARK(BM_Sign);

// What the dispatcher does per attempt: decode the endpoint's secret, then sign.
void BM_DecodeSecretAndSignatureHeader(benchmark::State& state) {
  const std::string secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
  const std::string body = model::Payload(SampleEvent(), model::PayloadFormat::kIzooto, "");
  for (auto _ : state) {
    std::vector<std::string> keys{*model::DecodeSecret(secret)};
    std::string header =
        model::SignatureHeader(keys, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
    benchmark::DoNotOptimize(header);
  }
}
BENCHMARK(BM_DecodeSecretAndSignatureHeader);

// What `pushhook receive` does per request for each secret it tries.
void BM_VerifySignatureHeader(benchmark::State& state) {
  const std::string key = *model::DecodeSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
  const std::string body = model::Payload(SampleEvent(), model::PayloadFormat::kIzooto, "");
  const std::string header = model::Sign(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
  for (auto _ : state) {
    bool ok =
        model::VerifySignatureHeader(header, key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
    benchmark::DoNotOptimize(ok);
  }
}
BENCHMARK(BM_VerifySignatureHeader);

void BM_HyperLogLogAdd(benchmark::State& state) {
  std::vector<std::string> ids;
  ids.reserve(4096);
  for (int i = 0; i < 4096; ++i) {
    ids.push_back("7e32b7a1-acfc-45db-83fb-" + std::to_string(100'000'000'000 + i));
  }
  model::HyperLogLog sketch;
  size_t i = 0;
  for (auto _ : state) {
    sketch.Add(ids[i++ & 4095]);
    benchmark::ClobberMemory();
  }
  benchmark::DoNotOptimize(sketch.Estimate());
}
BENCHMARK(BM_HyperLogLogAdd);

}  // namespace

BENCHMARK_MAIN();
