// JSON string literals per RFC 8259, written by hand: the webhook payload and the log lines are
// built byte by byte on hot paths, where a JSON library's document model would cost more than
// the escaping itself. Pure function; safe from any thread.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace pushhook::model {

// Appends `s` as a JSON string literal (with quotes). `s` must be valid UTF-8; non-ASCII passes
// through unescaped, control characters become \u00XX (or their short forms).
void AppendJsonString(std::string& out, std::string_view s);

// Appends `values` as a JSON array of strings: ["a","b"].
void AppendJsonStringArray(std::string& out, const std::vector<std::string>& values);

}  // namespace pushhook::model
