// What `send` and `stats` say when a request to the server gets no answer: libcurl's text,
// and for a server certificate this machine does not trust, what to do about it.
#pragma once

#include <curl/curl.h>

#include <string>

namespace pushhook::cli {

inline std::string RequestFailure(CURLcode rc) {
  std::string text = curl_easy_strerror(rc);
  if (rc == CURLE_PEER_FAILED_VERIFICATION) {
    text +=
        " (the server's certificate is not trusted here: --ca-file names the CA that signed it)";
  }
  return text;
}

}  // namespace pushhook::cli
