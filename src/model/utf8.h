// Text from outside that must become text every consumer takes: a receiver's answer is any
// bytes, while PostgreSQL's text columns refuse ill-formed UTF-8 and NUL, and JSON must be
// well-formed UTF-8. Pure function; safe from any thread.
#pragma once

#include <string>
#include <string_view>

namespace pushhook::model {

// `bytes` as well-formed UTF-8 (RFC 3629) without NUL: each NUL, and each ill-formed sequence
// (its maximal subpart, as Unicode's recommended practice counts it), becomes U+FFFD. With
// `cut`, the bytes are the start of something longer, and an incomplete sequence at their very
// end is dropped rather than replaced: it is a character the cut went through.
std::string ToValidUtf8(std::string_view bytes, bool cut = false);

// `text` with each character lowered by the C library's simple case mapping under C.UTF-8
// ("Über" becomes "über", "ΣΑΣ" becomes "σασ"), as PostgreSQL's lower() does under a UTF-8
// locale; SQLite's own lower() maps ASCII only. Bytes that are not well-formed UTF-8 are kept
// as they are. Without the C.UTF-8 locale (glibc has it built in) only ASCII is lowered.
std::string ToLowerCase(std::string_view text);

// Whether `text` has a C0 control character or DEL: what identifiers (cookie_id, cid, …) may
// not hold.
bool HasControlCharacter(std::string_view text);

// Text from a request quoted in an error message ('text'): well-formed UTF-8, since the message
// goes into a JSON body, cut to at most `max_bytes` where a character starts.
std::string QuotedText(std::string_view text, size_t max_bytes = 64);

}  // namespace pushhook::model
