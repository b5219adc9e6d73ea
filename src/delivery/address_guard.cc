#include "delivery/address_guard.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <boost/url/parse.hpp>
#include <charconv>
#include <cstring>
#include <initializer_list>
#include <optional>
#include <string>

namespace pushhook::delivery {
namespace {

struct Ipv4Range {
  uint32_t network;
  int prefix;
  AddressClass address_class;
};

constexpr uint32_t V4(uint32_t a, uint32_t b, uint32_t c, uint32_t d) {
  return (a << 24) | (b << 16) | (c << 8) | d;
}

// Most specific first: the first match wins (255.255.255.255 before 240/4).
constexpr Ipv4Range kIpv4Ranges[] = {
    {V4(255, 255, 255, 255), 32, AddressClass::kBroadcast},
    {V4(0, 0, 0, 0), 8, AddressClass::kUnspecified},
    {V4(127, 0, 0, 0), 8, AddressClass::kLoopback},
    {V4(10, 0, 0, 0), 8, AddressClass::kPrivate},
    {V4(172, 16, 0, 0), 12, AddressClass::kPrivate},
    {V4(192, 168, 0, 0), 16, AddressClass::kPrivate},
    {V4(169, 254, 0, 0), 16, AddressClass::kLinkLocal},
    {V4(100, 64, 0, 0), 10, AddressClass::kSharedAddressSpace},
    {V4(224, 0, 0, 0), 4, AddressClass::kMulticast},
    {V4(192, 0, 2, 0), 24, AddressClass::kDocumentation},
    {V4(198, 51, 100, 0), 24, AddressClass::kDocumentation},
    {V4(203, 0, 113, 0), 24, AddressClass::kDocumentation},
    {V4(192, 0, 0, 0), 24, AddressClass::kReserved},    // IETF protocol assignments
    {V4(192, 88, 99, 0), 24, AddressClass::kReserved},  // 6to4 relay anycast (deprecated)
    {V4(198, 18, 0, 0), 15, AddressClass::kReserved},   // benchmarking
    {V4(240, 0, 0, 0), 4, AddressClass::kReserved},
};

bool InIpv4Range(uint32_t address, const Ipv4Range& range) {
  const uint32_t mask = range.prefix == 0 ? 0 : ~uint32_t{0} << (32 - range.prefix);
  return (address & mask) == range.network;
}

// True if the first `prefix` bits of `bytes` equal those of `network` (missing bytes are zero).
bool HasPrefix(const uint8_t (&bytes)[16], std::initializer_list<uint8_t> network, int prefix) {
  for (int bit = 0; bit < prefix; bit += 8) {
    const auto index = static_cast<size_t>(bit / 8);
    const uint8_t expected = index < network.size() ? network.begin()[index] : 0;
    const int bits = std::min(8, prefix - bit);
    const auto mask = static_cast<uint8_t>(0xff << (8 - bits));
    if ((bytes[index] & mask) != (expected & mask)) return false;
  }
  return true;
}

bool AllZero(const uint8_t* bytes, size_t count) {
  return std::all_of(bytes, bytes + count, [](uint8_t b) { return b == 0; });
}

uint32_t ReadIpv4(const uint8_t* bytes) { return V4(bytes[0], bytes[1], bytes[2], bytes[3]); }

}  // namespace

AddressClass ClassifyIpv4(uint32_t address) {
  for (const Ipv4Range& range : kIpv4Ranges) {
    if (InIpv4Range(address, range)) return range.address_class;
  }
  return AddressClass::kPublic;
}

AddressClass ClassifyIpv6(const uint8_t (&b)[16]) {
  if (AllZero(b, 15)) {
    if (b[15] == 0) return AddressClass::kUnspecified;
    if (b[15] == 1) return AddressClass::kLoopback;
  }
  // ::a.b.c.d (IPv4-compatible, deprecated), ::ffff:a.b.c.d (mapped), ::ffff:0:a.b.c.d
  // (translated) and 64:ff9b::a.b.c.d (NAT64) all reach the IPv4 address inside.
  if (AllZero(b, 12)) return ClassifyIpv4(ReadIpv4(b + 12));
  if (AllZero(b, 10) && b[10] == 0xff && b[11] == 0xff) return ClassifyIpv4(ReadIpv4(b + 12));
  if (AllZero(b, 8) && b[8] == 0xff && b[9] == 0xff && b[10] == 0 && b[11] == 0) {
    return ClassifyIpv4(ReadIpv4(b + 12));
  }
  if (HasPrefix(b, {0x00, 0x64, 0xff, 0x9b}, 96)) {
    return ClassifyIpv4(ReadIpv4(b + 12));
  }
  if (HasPrefix(b, {0x00, 0x64, 0xff, 0x9b, 0x00, 0x01}, 48)) return AddressClass::kPrivate;
  if (HasPrefix(b, {0x20, 0x02}, 16)) {
    return ClassifyIpv4(ReadIpv4(b + 2));  // 6to4 carries its IPv4 address in bits 16..47
  }
  if (HasPrefix(b, {0xff}, 8)) return AddressClass::kMulticast;
  if (HasPrefix(b, {0xfe, 0x80}, 10)) return AddressClass::kLinkLocal;
  if (HasPrefix(b, {0xfe, 0xc0}, 10)) return AddressClass::kPrivate;
  if (HasPrefix(b, {0xfc}, 7)) return AddressClass::kPrivate;
  if (HasPrefix(b, {0x20, 0x01, 0x0d, 0xb8}, 32)) return AddressClass::kDocumentation;
  if (HasPrefix(b, {0x3f, 0xff}, 20)) return AddressClass::kDocumentation;
  if (HasPrefix(b, {0x01, 0x00}, 64)) return AddressClass::kReserved;
  // 2001::/23 (IETF protocol assignments: Teredo, ORCHID, benchmarking...) is not a place for
  // webhooks; neither is anything outside global unicast 2000::/3.
  if (HasPrefix(b, {0x20, 0x01, 0x00}, 23)) return AddressClass::kReserved;
  if (!HasPrefix(b, {0x20}, 3)) return AddressClass::kReserved;
  return AddressClass::kPublic;
}

AddressClass ClassifyAddress(const sockaddr* address, size_t length) {
  if (address == nullptr || length < sizeof(sa_family_t)) return AddressClass::kUnknownFamily;
  if (address->sa_family == AF_INET && length >= sizeof(sockaddr_in)) {
    sockaddr_in v4;
    std::memcpy(&v4, address, sizeof(v4));
    return ClassifyIpv4(ntohl(v4.sin_addr.s_addr));
  }
  if (address->sa_family == AF_INET6 && length >= sizeof(sockaddr_in6)) {
    sockaddr_in6 v6;
    std::memcpy(&v6, address, sizeof(v6));
    uint8_t bytes[16];
    std::memcpy(bytes, &v6.sin6_addr, sizeof(bytes));
    return ClassifyIpv6(bytes);
  }
  return AddressClass::kUnknownFamily;
}

std::string_view DescribeAddressClass(AddressClass address_class) {
  switch (address_class) {
    case AddressClass::kPublic:
      return "a public address";
    case AddressClass::kLoopback:
      return "a loopback address";
    case AddressClass::kPrivate:
      return "a private address";
    case AddressClass::kLinkLocal:
      return "a link-local address";
    case AddressClass::kSharedAddressSpace:
      return "a shared (carrier-grade NAT) address";
    case AddressClass::kMulticast:
      return "a multicast address";
    case AddressClass::kUnspecified:
      return "an unspecified address";
    case AddressClass::kDocumentation:
      return "a documentation address";
    case AddressClass::kBroadcast:
      return "a broadcast address";
    case AddressClass::kReserved:
      return "a reserved address";
    case AddressClass::kUnknownFamily:
      break;
  }
  return "an address of an unknown family";
}

std::string FormatAddress(const sockaddr* address, size_t length) {
  char text[INET6_ADDRSTRLEN] = {};
  // The length is checked before sa_family is read: a shorter buffer may not hold it.
  if (address != nullptr && length >= sizeof(sockaddr_in) && address->sa_family == AF_INET) {
    sockaddr_in v4;
    std::memcpy(&v4, address, sizeof(v4));
    if (inet_ntop(AF_INET, &v4.sin_addr, text, sizeof(text)) != nullptr) return text;
  }
  if (address != nullptr && length >= sizeof(sockaddr_in6) && address->sa_family == AF_INET6) {
    sockaddr_in6 v6;
    std::memcpy(&v6, address, sizeof(v6));
    if (inet_ntop(AF_INET6, &v6.sin6_addr, text, sizeof(text)) != nullptr) return text;
  }
  return "unknown address";
}

namespace {

constexpr size_t kMaxUrlBytes = 2048;

// The literal address a URL host names, if it is one: dotted quads, IPv6 in brackets, and the
// legacy numeric forms that resolvers accept ("2130706433", "0x7f.1", "127.1").
std::optional<AddressClass> LiteralHostClass(const boost::urls::url_view& url) {
  const std::string host(url.encoded_host());
  if (url.host_type() == boost::urls::host_type::ipv6) {
    sockaddr_in6 sa{};
    sa.sin6_family = AF_INET6;
    if (inet_pton(AF_INET6, std::string(url.host_address()).c_str(), &sa.sin6_addr) != 1) {
      return std::nullopt;
    }
    return ClassifyAddress(reinterpret_cast<const sockaddr*>(&sa), sizeof(sa));
  }
  in_addr v4{};
  if (inet_aton(host.c_str(), &v4) == 1) return ClassifyIpv4(ntohl(v4.s_addr));
  return std::nullopt;
}

}  // namespace

bool IsTcpPort(std::string_view port) {
  unsigned number = 0;
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), number);
  return ec == std::errc() && end == port.data() + port.size() && number >= 1 && number <= 65535;
}

model::Status CheckWebhookUrl(std::string_view text, DestinationPolicy policy) {
  if (text.size() > kMaxUrlBytes) {
    return model::InvalidArgument("url must be at most " + std::to_string(kMaxUrlBytes) + " bytes");
  }
  auto parsed = boost::urls::parse_absolute_uri(text);
  if (!parsed) {
    // An absolute URI has no fragment; say so rather than that the whole URL is wrong.
    if (auto with_fragment = boost::urls::parse_uri(text);
        with_fragment && with_fragment->has_fragment()) {
      return model::InvalidArgument("url must not carry a fragment (#" +
                                    std::string(with_fragment->encoded_fragment()) +
                                    "): receivers never see it");
    }
    return model::InvalidArgument("url is not an absolute URL: " + std::string(text));
  }
  const auto& url = *parsed;
  std::string scheme(url.scheme());  // case-insensitive (RFC 3986 3.1)
  for (char& c : scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (scheme != "https" && scheme != "http") {
    return model::InvalidArgument("url must use https (or http where allowed), not " + scheme);
  }
  if (url.encoded_host().empty())
    return model::InvalidArgument("url has no host: " + std::string(text));
  if (url.has_userinfo()) return model::InvalidArgument("url must not carry user information");
  // Boost.URL ends a port at its first non-digit and reads the rest as the path: "host:abc/x"
  // has no port and the path "abc/x", and was sent to port 80. After a host, a path starts with
  // "/" (RFC 3986 3.3), so one that does not is the rest of the port.
  if (const std::string_view path = url.encoded_path(); !path.empty() && path.front() != '/') {
    return model::InvalidArgument("url port must be 1 to 65535, not " + std::string(url.port()) +
                                  std::string(path.substr(0, path.find('/'))));
  }
  if (url.has_port() && !url.port().empty() && !IsTcpPort(url.port())) {
    return model::InvalidArgument("url port must be 1 to 65535, not " + std::string(url.port()));
  }
  if (scheme == "http" && !policy.allow_http) {
    return {model::StatusCode::kUnprocessable,
            "url must use https; plain http needs delivery.allow_http (or serve --dev)"};
  }
  if (!policy.allow_private_destinations) {
    std::string host(url.encoded_host());
    for (char& c : host) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    const bool localhost = host == "localhost" || host.ends_with(".localhost") ||
                           host == "localhost." || host.ends_with(".localhost.");
    const auto literal = LiteralHostClass(url);
    if (localhost || (literal && *literal != AddressClass::kPublic)) {
      const std::string kind =
          localhost ? "a loopback address" : std::string(DescribeAddressClass(*literal));
      return {model::StatusCode::kUnprocessable,
              "url host " + host + " is " + kind +
                  "; private destinations need delivery.allow_private_destinations "
                  "(or serve --dev)"};
    }
  }
  return model::Status::Ok();
}

}  // namespace pushhook::delivery
