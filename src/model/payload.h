// The webhook body of DESIGN section 1: compact JSON, keys in a fixed order, strings escaped per
// RFC 8259. Written by hand rather than through a JSON library because the order and byte-exact
// shape are the contract, and because this runs once per delivered message.
#pragma once

#include <string>
#include <string_view>

#include "model/event.h"

namespace pushhook::model {

// Appends `s` as a JSON string literal (with quotes). `s` must be valid UTF-8; non-ASCII passes
// through unescaped, control characters become \u00XX (or their short forms).
void AppendJsonString(std::string& out, std::string_view s);

// Appends the payload of `event` in `format`. `site_id` is used by the extended format only.
void AppendPayload(std::string& out, const Event& event, PayloadFormat format,
                   std::string_view site_id);

std::string Payload(const Event& event, PayloadFormat format, std::string_view site_id);

// Formats Unix milliseconds as RFC 3339 UTC with milliseconds: 2026-11-27T20:00:00.000Z.
std::string FormatRfc3339Ms(int64_t unix_ms);

// Parses RFC 3339 (with offset or Z, optional fraction) into Unix milliseconds.
bool ParseRfc3339(std::string_view text, int64_t* unix_ms);

}  // namespace pushhook::model
