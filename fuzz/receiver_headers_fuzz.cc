// libFuzzer target for the checks the receiving side makes on a webhook's headers (DESIGN section
// 5): the secret ("whsec_" + base64) and its decoding, and the webhook-signature header with any
// number of space-separated entries, verified against (webhook-id, webhook-timestamp, body).
// The timestamp is parsed with model::ParseWebhookTimestamp, as the receiver parses it.
//
// Invariants beyond "no crash": base64 round-trips; a header verifies exactly when one of its
// entries equals the expected signature (checked against a plain reference); a header we make
// for a key always verifies with that key, whatever junk entries surround it, and never with a
// different key.
#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "model/base64.h"
#include "model/signature.h"

namespace {

namespace model = pushhook::model;

void Check(bool condition) {
  if (!condition) std::abort();
}

// Plain reference: does any space-separated entry equal `expected`?
bool ReferenceVerify(std::string_view header, const std::string& expected) {
  size_t start = 0;
  for (;;) {
    const size_t space = header.find(' ', start);
    if (header.substr(start, space - start) == expected) return true;
    if (space == std::string_view::npos) return false;
    start = space + 1;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  const std::string secret = in.ConsumeRandomLengthString(128);
  const std::string msg_id = in.ConsumeRandomLengthString(64);
  const std::string timestamp_text = in.ConsumeRandomLengthString(24);
  const std::string header = in.ConsumeRandomLengthString(512);
  const std::string body = in.ConsumeRemainingBytesAsString();

  // Base64 both ways: whatever decodes is at most 3/4 of its text and encodes back to text that
  // decodes to the same bytes; any bytes survive encode then decode.
  if (const auto decoded = model::Base64Decode(secret)) {
    Check(decoded->size() <= secret.size() / 4 * 3);
    const auto again = model::Base64Decode(model::Base64Encode(*decoded));
    Check(again && *again == *decoded);
  }
  const auto round_trip = model::Base64Decode(model::Base64Encode(body));
  Check(round_trip && *round_trip == body);

  std::string key;
  if (const auto decoded = model::DecodeSecret(secret)) {
    Check(!decoded->empty() && secret.starts_with("whsec_"));
    key = *decoded;
  } else {
    key = secret;  // any bytes are a valid HMAC key; keep exercising the verifier
  }

  int64_t timestamp = 0;
  if (const auto parsed = model::ParseWebhookTimestamp(timestamp_text)) timestamp = *parsed;

  const std::string expected = model::Sign(key, msg_id, timestamp, body);
  Check(expected.starts_with("v1,") && expected.size() == 3 + 44);
  Check(model::VerifySignatureHeader(header, key, msg_id, timestamp, body) ==
        ReferenceVerify(header, expected));

  // Ours, among fuzzed entries, verifies with its key and not with another one.
  const std::string ours = model::SignatureHeader({key, key + "x"}, msg_id, timestamp, body);
  const std::string mixed = header + " " + ours + " " + header;
  Check(model::VerifySignatureHeader(mixed, key, msg_id, timestamp, body));
  const std::string other_key = key + "y";
  const std::string other = model::Sign(other_key, msg_id, timestamp, body);
  Check(model::VerifySignatureHeader(ours, other_key, msg_id, timestamp, body) == false);
  Check(model::VerifySignatureHeader(header, other_key, msg_id, timestamp, body) ==
        ReferenceVerify(header, other));
  return 0;
}
