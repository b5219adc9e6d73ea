// The dashboard's files (web/), compiled into the binary by cmake/embed_web.cmake, so the one
// binary is still the whole install.
#pragma once

#include <span>
#include <string_view>

namespace pushhook::web {

struct Asset {
  // "/" for index.html, "/openapi.json" for the API's description (docs/openapi.json),
  // "/assets/<stem>.<hash>.<ext>" for the rest.
  std::string_view path;
  std::string_view content_type;
  std::string_view body;
  bool immutable;  // its name changes with its content: cacheable for ever
};

std::span<const Asset> Assets();

}  // namespace pushhook::web
