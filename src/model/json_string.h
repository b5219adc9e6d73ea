// JSON string literals per RFC 8259, written by hand: the webhook payload and the log lines are
// built byte by byte on hot paths, where a JSON library's document model would cost more than
// the escaping itself. Pure function; safe from any thread.
#pragma once

#include <string>
#include <string_view>

namespace pushhook::model {

// Appends `s` as a JSON string literal (with quotes). `s` must be valid UTF-8; non-ASCII passes
// through unescaped, control characters become \u00XX (or their short forms).
void AppendJsonString(std::string& out, std::string_view s);

}  // namespace pushhook::model
