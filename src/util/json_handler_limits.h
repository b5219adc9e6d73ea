// The size limits a boost::json::basic_parser handler must declare, all lifted: the handlers of
// this project bound what they take themselves (the body's size, the parse options' depth) and
// say so in their own words. A handler inherits them publicly.
#pragma once

#include <cstddef>

namespace pushhook::util {

struct UnboundedJsonHandler {
  static constexpr size_t max_array_size = static_cast<size_t>(-1);
  static constexpr size_t max_object_size = static_cast<size_t>(-1);
  static constexpr size_t max_string_size = static_cast<size_t>(-1);
  static constexpr size_t max_key_size = static_cast<size_t>(-1);
};

}  // namespace pushhook::util
