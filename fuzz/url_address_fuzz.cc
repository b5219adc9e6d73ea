// libFuzzer target for the delivery address guard (delivery::ClassifyAddress and friends) and the
// URL checks in front of it. The fuzzed text goes through every path by which an address reaches
// the guard: inet_pton (what resolvers return for numeric hosts), inet_aton (the legacy forms
// "2130706433", "0x7f.1", "127.1" that resolvers also accept), raw socket-address bytes of any
// family and length (what the outbound client checks after resolution), and boost::urls'
// parse_absolute_uri followed by the literal-host check that endpoint registration makes.
//
// That literal-host check is private to src/admin/admin_api.cc (LiteralHostClass); LiteralHost
// below repeats it step for step. Keep the two in step.
//
// Invariants beyond "no crash": the sockaddr and raw-value classifiers agree; an IPv4-mapped IPv6
// address classifies as its IPv4 address; FormatAddress gives text that parses back to the same
// address; a few well-known ranges always land in their class.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <boost/url/parse.hpp>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "delivery/address_guard.h"

namespace {

namespace delivery = pushhook::delivery;
using delivery::AddressClass;

void Check(bool condition) {
  if (!condition) std::abort();
}

void CheckDescribed(AddressClass c) { Check(!delivery::DescribeAddressClass(c).empty()); }

AddressClass ClassifyV4Sockaddr(in_addr address) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr = address;
  const auto* generic = reinterpret_cast<const sockaddr*>(&sa);
  const AddressClass c = delivery::ClassifyAddress(generic, sizeof(sa));
  Check(c == delivery::ClassifyIpv4(ntohl(address.s_addr)));
  // The text of the address reads back as the same address.
  const std::string text = delivery::FormatAddress(generic, sizeof(sa));
  in_addr back{};
  Check(inet_pton(AF_INET, text.c_str(), &back) == 1 && back.s_addr == address.s_addr);
  // Ranges that must never be public, whatever the table says.
  const uint32_t host = ntohl(address.s_addr);
  const uint32_t first = host >> 24;
  if (first == 127) Check(c == AddressClass::kLoopback);
  if (first == 10) Check(c == AddressClass::kPrivate);
  if (first == 0) Check(c == AddressClass::kUnspecified);
  if (first >= 224 && first < 240) Check(c == AddressClass::kMulticast);
  if ((host & 0xffff0000u) == 0xa9fe0000u) Check(c == AddressClass::kLinkLocal);
  CheckDescribed(c);

  // The same address, IPv4-mapped (::ffff:a.b.c.d), is the same class.
  sockaddr_in6 mapped{};
  mapped.sin6_family = AF_INET6;
  mapped.sin6_addr.s6_addr[10] = 0xff;
  mapped.sin6_addr.s6_addr[11] = 0xff;
  std::memcpy(&mapped.sin6_addr.s6_addr[12], &address.s_addr, 4);
  Check(delivery::ClassifyAddress(reinterpret_cast<const sockaddr*>(&mapped), sizeof(mapped)) == c);
  return c;
}

AddressClass ClassifyV6Sockaddr(const in6_addr& address) {
  sockaddr_in6 sa{};
  sa.sin6_family = AF_INET6;
  sa.sin6_addr = address;
  const auto* generic = reinterpret_cast<const sockaddr*>(&sa);
  const AddressClass c = delivery::ClassifyAddress(generic, sizeof(sa));
  uint8_t bytes[16];
  std::memcpy(bytes, &address, sizeof(bytes));
  Check(c == delivery::ClassifyIpv6(bytes));
  const std::string text = delivery::FormatAddress(generic, sizeof(sa));
  in6_addr back{};
  Check(inet_pton(AF_INET6, text.c_str(), &back) == 1 &&
        std::memcmp(&back, &address, sizeof(back)) == 0);
  if (bytes[0] == 0xff) Check(c == AddressClass::kMulticast);
  if (bytes[0] == 0xfe && (bytes[1] & 0xc0) == 0x80) Check(c == AddressClass::kLinkLocal);
  if ((bytes[0] & 0xfe) == 0xfc) Check(c == AddressClass::kPrivate);
  CheckDescribed(c);
  return c;
}

// What endpoint registration does with a URL's host (admin_api.cc, LiteralHostClass).
std::optional<AddressClass> LiteralHost(const boost::urls::url_view& url) {
  const std::string host(url.encoded_host());
  if (url.host_type() == boost::urls::host_type::ipv6) {
    in6_addr v6{};
    if (inet_pton(AF_INET6, std::string(url.host_address()).c_str(), &v6) != 1) {
      return std::nullopt;
    }
    return ClassifyV6Sockaddr(v6);
  }
  in_addr v4{};
  if (inet_aton(host.c_str(), &v4) == 1) return ClassifyV4Sockaddr(v4);
  return std::nullopt;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);

  in_addr v4{};
  if (inet_pton(AF_INET, text.c_str(), &v4) == 1) ClassifyV4Sockaddr(v4);
  if (inet_aton(text.c_str(), &v4) == 1) ClassifyV4Sockaddr(v4);
  in6_addr v6{};
  if (inet_pton(AF_INET6, text.c_str(), &v6) == 1) ClassifyV6Sockaddr(v6);

  // Raw socket-address bytes of any family and length, as a resolver could hand them over, in a
  // buffer of exactly that length so that reading past it is caught.
  const size_t length = std::min(size, sizeof(sockaddr_storage));
  const std::unique_ptr<uint8_t[]> buffer(new uint8_t[length]);
  std::memcpy(buffer.get(), data, length);
  const auto* raw = reinterpret_cast<const sockaddr*>(buffer.get());
  const AddressClass raw_class = delivery::ClassifyAddress(raw, length);
  CheckDescribed(raw_class);
  if (raw_class != AddressClass::kUnknownFamily) {
    Check((raw->sa_family == AF_INET && length >= sizeof(sockaddr_in)) ||
          (raw->sa_family == AF_INET6 && length >= sizeof(sockaddr_in6)));
  }
  (void)delivery::FormatAddress(raw, length);
  (void)delivery::ClassifyAddress(nullptr, 0);

  // A URL, as an endpoint's url field.
  if (auto parsed = boost::urls::parse_absolute_uri(text)) {
    const boost::urls::url_view& url = *parsed;
    (void)url.scheme();
    (void)url.has_userinfo();
    (void)url.port_number();
    (void)url.encoded_path();
    (void)url.encoded_query();
    if (url.host_type() == boost::urls::host_type::ipv4) {
      // A dotted quad host is a literal the check must catch.
      Check(LiteralHost(url).has_value());
    } else {
      (void)LiteralHost(url);
    }
  }
  return 0;
}
