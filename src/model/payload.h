// The webhook body of DESIGN section 1: compact JSON, keys in a fixed order, strings escaped per
// RFC 8259. Written by hand rather than through a JSON library because the order and byte-exact
// shape are the contract, and because this runs once per delivered message.
#pragma once

#include <string>
#include <string_view>

#include "model/event.h"

namespace pushhook::model {

// The longest payload one event can make: every byte of every field escaped as "\u00XX" (six
// bytes), plus the keys, quotes and separators, a site id and the extended format's time. A
// receiver of batches sizes its body limit from it (payload_test checks the bound).
inline constexpr size_t kMaxPayloadBytes =
    6 * (kMaxCookieId + kMaxCid + kMaxTitle + kMaxReferenceId + 5 * kMaxUtm + kMaxEventId) + 512;

// Appends the payload of `event` in `format`. `site_id` is used by the extended format only.
void AppendPayload(std::string& out, const Event& event, PayloadFormat format,
                   std::string_view site_id);

std::string Payload(const Event& event, PayloadFormat format, std::string_view site_id);

}  // namespace pushhook::model
