// The two secrets `serve` keeps beside its data when configuration does not give them: the
// operator token (<data_dir>/admin-token) and the key that seals endpoint secrets
// (<data_dir>/secrets-key). Each is made once, written to a temporary name with mode 0600, synced
// and renamed into place, so a crash never leaves a truncated file that would stop the next start
// or seal secrets under a key nobody has. Call from one thread at start-up.
#pragma once

#include <string>
#include <string_view>

#include "model/status.h"

namespace pushhook::server {

// Writes `content` to `path` through `path`.tmp: mode 0600, fsync of the file, rename, fsync of
// the folder. On failure the temporary file is removed and `path` is untouched.
model::Status WriteFileAtomically(const std::string& path, std::string_view content);

// The operator token: `configured` if set, else the one in <data_dir>/admin-token, else a new one
// written there. `*made` (when given) says whether it was new: the caller, which may still fail
// to start and take the file back, is the one to tell the operator where it is.
model::StatusOr<std::string> LoadOrCreateOperatorToken(const std::string& configured,
                                                       const std::string& data_dir,
                                                       bool* made = nullptr);

// The 32 raw bytes of the secrets key: `configured_base64` if set, else <data_dir>/secrets-key,
// else a new key written there (`*made`, when given, says so, as for the token). A key that is
// not base64 of 32 bytes is an InvalidArgument.
model::StatusOr<std::string> LoadOrCreateSecretsKey(const std::string& configured_base64,
                                                    const std::string& data_dir,
                                                    bool* made = nullptr);

}  // namespace pushhook::server
