// Where webhooks may go (DESIGN section 4). Registration checks a URL on its face
// (CheckWebhookUrl: scheme, shape, hosts that are private literally); the outbound client checks
// the address actually resolved (ClassifyAddress), so that DNS cannot smuggle a private address
// in. Pure functions, any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "model/status.h"

struct sockaddr;

namespace pushhook::delivery {

enum class AddressClass {
  kPublic,              // globally routable unicast: the only class allowed by default
  kLoopback,            // 127/8, ::1
  kPrivate,             // RFC 1918, fc00::/7 (RFC 4193), fec0::/10 (old site-local), 64:ff9b:1::/48
  kLinkLocal,           // 169.254/16, fe80::/10
  kSharedAddressSpace,  // 100.64/10, carrier-grade NAT (RFC 6598)
  kMulticast,           // 224/4, ff00::/8
  kUnspecified,         // 0/8 ("this network"), ::
  kDocumentation,       // 192.0.2/24, 198.51.100/24, 203.0.113/24, 2001:db8::/32, 3fff::/20
  kBroadcast,           // 255.255.255.255
  kReserved,            // everything else not globally routable: 240/4, 198.18/15, 192.0.0/24,
                        // 100::/64, 2001::/23, IPv6 outside 2000::/3, ...
  kUnknownFamily,       // not AF_INET or AF_INET6, or too short to be one
};

// Classifies an AF_INET or AF_INET6 socket address of `length` bytes. IPv6 forms that carry an
// IPv4 address (IPv4-mapped ::ffff:a.b.c.d, IPv4-compatible ::a.b.c.d, IPv4-translated
// ::ffff:0:a.b.c.d, NAT64 64:ff9b::/96, 6to4 2002::/16) are classified by the IPv4 address inside.
AddressClass ClassifyAddress(const sockaddr* address, size_t length);

// The same for raw addresses: IPv4 in host byte order, IPv6 as its 16 network-order bytes.
AddressClass ClassifyIpv4(uint32_t address);
AddressClass ClassifyIpv6(const uint8_t (&bytes)[16]);

// "a loopback address", "a private address", ...: reads after "destination 10.0.0.1 is ".
std::string_view DescribeAddressClass(AddressClass address_class);

// The numeric text of the address ("127.0.0.1", "::1"), or "unknown address".
std::string FormatAddress(const sockaddr* address, size_t length);

// What configuration allows besides public https destinations.
struct DestinationPolicy {
  bool allow_http = false;                  // delivery.allow_http
  bool allow_private_destinations = false;  // delivery.allow_private_destinations
};

// Whether `port`, the digits after a URL's host, names a TCP port (1 to 65535). An empty one
// (`host:`) stands for the scheme's default and is not asked about here.
bool IsTcpPort(std::string_view port);

// Checks a webhook URL as registration can, before any lookup: an absolute http(s) URL of at
// most 2,048 bytes with a host, a TCP port if any, and neither user information nor a fragment
// (InvalidArgument otherwise), https unless the policy allows http, and a host that is not
// private on its face (localhost, or a literal address of a non-public class, in any numeric form
// resolvers accept), unless the policy allows private destinations (kUnprocessable). Messages
// name the setting that would allow it.
model::Status CheckWebhookUrl(std::string_view url, DestinationPolicy policy);

}  // namespace pushhook::delivery
