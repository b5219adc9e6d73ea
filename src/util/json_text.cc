#include "util/json_text.h"

#include <boost/json.hpp>
#include <boost/json/basic_parser_impl.hpp>
#include <charconv>
#include <cmath>
#include <set>
#include <vector>

#include "model/json_string.h"
#include "util/json_handler_limits.h"

namespace pushhook::util {
namespace {

void Append(std::string& out, const boost::json::value& v) {
  switch (v.kind()) {
    case boost::json::kind::null:
      out += "null";
      return;
    case boost::json::kind::bool_:
      out += v.get_bool() ? "true" : "false";
      return;
    case boost::json::kind::int64:
      out += std::to_string(v.get_int64());
      return;
    case boost::json::kind::uint64:
      out += std::to_string(v.get_uint64());
      return;
    case boost::json::kind::double_: {
      const double d = v.get_double();
      if (!std::isfinite(d)) {
        out += "null";  // JSON has no infinities
        return;
      }
      char buf[32];
      const auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), d);
      out.append(buf, end);
      return;
    }
    case boost::json::kind::string:
      model::AppendJsonString(out, v.get_string());
      return;
    case boost::json::kind::array: {
      out.push_back('[');
      bool first = true;
      for (const auto& item : v.get_array()) {
        if (!first) out.push_back(',');
        first = false;
        Append(out, item);
      }
      out.push_back(']');
      return;
    }
    case boost::json::kind::object: {
      out.push_back('{');
      bool first = true;
      for (const auto& [key, item] : v.get_object()) {
        if (!first) out.push_back(',');
        first = false;
        model::AppendJsonString(out, key);
        out.push_back(':');
        Append(out, item);
      }
      out.push_back('}');
      return;
    }
  }
}

// A boost::json::basic_parser handler that keeps only each open object's keys, and the first
// key met twice.
class RepeatedKeyFinder : public UnboundedJsonHandler {
 public:
  const std::optional<std::string>& repeated() const { return repeated_; }

  bool on_document_begin(boost::json::error_code&) { return true; }
  bool on_document_end(boost::json::error_code&) { return true; }
  bool on_array_begin(boost::json::error_code&) {
    open_.emplace_back();
    return true;
  }
  bool on_array_end(size_t, boost::json::error_code&) { return Close(); }
  bool on_object_begin(boost::json::error_code&) {
    open_.emplace_back().object = true;
    return true;
  }
  bool on_object_end(size_t, boost::json::error_code&) { return Close(); }
  bool on_key_part(boost::json::string_view s, size_t, boost::json::error_code&) {
    key_.append(s.data(), s.size());
    return true;
  }
  bool on_key(boost::json::string_view s, size_t, boost::json::error_code&) {
    key_.append(s.data(), s.size());
    Frame& object = open_.back();
    if (!object.keys.insert(key_).second && !repeated_) {
      std::string path;
      for (const Frame& frame : open_) {
        if (&frame == &object) break;
        if (frame.object) path += frame.key + ".";
      }
      repeated_ = path + key_;
    }
    object.key = std::move(key_);
    key_.clear();
    return true;
  }
  bool on_string_part(boost::json::string_view, size_t, boost::json::error_code&) { return true; }
  bool on_string(boost::json::string_view, size_t, boost::json::error_code&) { return true; }
  bool on_number_part(boost::json::string_view, boost::json::error_code&) { return true; }
  bool on_int64(int64_t, boost::json::string_view, boost::json::error_code&) { return true; }
  bool on_uint64(uint64_t, boost::json::string_view, boost::json::error_code&) { return true; }
  bool on_double(double, boost::json::string_view, boost::json::error_code&) { return true; }
  bool on_bool(bool, boost::json::error_code&) { return true; }
  bool on_null(boost::json::error_code&) { return true; }
  bool on_comment_part(boost::json::string_view, boost::json::error_code&) { return true; }
  bool on_comment(boost::json::string_view, boost::json::error_code&) { return true; }

 private:
  struct Frame {
    bool object = false;
    std::set<std::string> keys;  // an object's keys so far
    std::string key;             // the key whose value is being read
  };

  bool Close() {
    open_.pop_back();
    return true;
  }

  std::vector<Frame> open_;
  std::string key_;  // the key being read, in parts
  std::optional<std::string> repeated_;
};

}  // namespace

std::string ToJsonText(const boost::json::value& value) {
  std::string out;
  Append(out, value);
  return out;
}

std::optional<std::string> IntegerText(const boost::json::value& value) {
  if (value.is_int64()) return std::to_string(value.get_int64());
  if (value.is_uint64()) return std::to_string(value.get_uint64());
  return std::nullopt;
}

std::string DescribeJsonError(boost::json::error_code ec, std::string_view text, size_t offset,
                              size_t max_depth) {
  namespace json = boost::json;
  if (ec == json::error::too_deep) {
    return "nested more than " + std::to_string(max_depth) + " levels deep";
  }
  if (ec == json::error::incomplete) return "unexpected end of input";
  if (ec == json::error::extra_data) return "unexpected data after the JSON value";
  if (ec != json::error::syntax || offset > text.size()) return ec.message();
  if (text.substr(offset).starts_with("\xEF\xBB\xBF")) {
    return "a byte order mark (U+FEFF), which JSON does not take; send the JSON without it";
  }
  if (offset < text.size() && static_cast<unsigned char>(text[offset]) >= 0x80) {
    return "invalid UTF-8";
  }
  // Boost.JSON stops just past a high surrogate's escape that no low one follows, or past the
  // backslash of another escape after it. The backslash starts an escape when an even number of
  // backslashes comes before it (\\ud800 is text).
  const size_t end = offset > 0 && text[offset - 1] == '\\' ? offset - 1 : offset;
  if (end >= 6) {
    const std::string_view escape = text.substr(end - 6, 6);
    size_t backslashes = 0;  // just before the escape's own
    for (size_t i = end - 6; i > 0 && text[i - 1] == '\\'; --i) ++backslashes;
    const auto lower = [](char c) { return static_cast<char>(c | 0x20); };
    if (escape.starts_with("\\u") && backslashes % 2 == 0 && lower(escape[2]) == 'd' &&
        std::string_view("89ab").find(lower(escape[3])) != std::string_view::npos) {
      return "the escape " + std::string(escape) +
             " is half of a UTF-16 surrogate pair, and its other half does not follow";
    }
  }
  return ec.message();
}

std::optional<std::string> RepeatedKey(std::string_view text) {
  boost::json::basic_parser<RepeatedKeyFinder> parser(boost::json::parse_options{});
  boost::json::error_code ec;
  const size_t used = parser.write_some(false, text.data(), text.size(), ec);
  if (ec || used != text.size()) return std::nullopt;  // write_some stops after one document
  return parser.handler().repeated();
}

}  // namespace pushhook::util
