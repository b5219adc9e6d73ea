// Randomness for secrets and ids, from the operating system's CSPRNG (OpenSSL's RAND_bytes).
// Safe from any thread. Throws std::runtime_error only if the CSPRNG itself fails, which
// leaves nothing safe to do.
#pragma once

#include <cstddef>
#include <string>

namespace pushhook::model {

// `n` random bytes.
std::string RandomBytes(size_t n);

// Random base62 text of `length` characters, each character equally likely.
std::string RandomToken(size_t length);

}  // namespace pushhook::model
