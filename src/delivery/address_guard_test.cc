#include "delivery/address_guard.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstring>

namespace pushhook::delivery {
namespace {

using C = AddressClass;

struct Case {
  const char* address;
  AddressClass expected;
};

// Parses `text` (IPv4 or IPv6) into a socket address, as curl would hand it over.
sockaddr_storage ToSockaddr(const char* text, size_t* length) {
  sockaddr_storage storage;
  std::memset(&storage, 0, sizeof(storage));
  auto* v4 = reinterpret_cast<sockaddr_in*>(&storage);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&storage);
  if (inet_pton(AF_INET, text, &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    *length = sizeof(sockaddr_in);
  } else if (inet_pton(AF_INET6, text, &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    *length = sizeof(sockaddr_in6);
  } else {
    ADD_FAILURE() << "not an address: " << text;
    *length = 0;
  }
  return storage;
}

AddressClass Classify(const char* text) {
  size_t length = 0;
  const sockaddr_storage storage = ToSockaddr(text, &length);
  return ClassifyAddress(reinterpret_cast<const sockaddr*>(&storage), length);
}

constexpr Case kCases[] = {
    // Public IPv4, including the edges of every neighbouring special range.
    {"8.8.8.8", C::kPublic},
    {"1.1.1.1", C::kPublic},
    {"93.184.216.34", C::kPublic},
    {"1.0.0.0", C::kPublic},
    {"9.255.255.255", C::kPublic},
    {"11.0.0.0", C::kPublic},
    {"100.63.255.255", C::kPublic},
    {"100.128.0.0", C::kPublic},
    {"126.255.255.255", C::kPublic},
    {"128.0.0.0", C::kPublic},
    {"169.253.255.255", C::kPublic},
    {"169.255.0.0", C::kPublic},
    {"172.15.255.255", C::kPublic},
    {"172.32.0.0", C::kPublic},
    {"192.0.1.255", C::kPublic},
    {"192.0.3.0", C::kPublic},
    {"192.167.255.255", C::kPublic},
    {"192.169.0.0", C::kPublic},
    {"198.17.255.255", C::kPublic},
    {"198.20.0.0", C::kPublic},
    {"223.255.255.255", C::kPublic},
    // Special IPv4.
    {"0.0.0.0", C::kUnspecified},
    {"0.1.2.3", C::kUnspecified},
    {"127.0.0.1", C::kLoopback},
    {"127.255.255.254", C::kLoopback},
    {"10.0.0.1", C::kPrivate},
    {"10.255.255.255", C::kPrivate},
    {"172.16.0.1", C::kPrivate},
    {"172.31.255.255", C::kPrivate},
    {"192.168.0.1", C::kPrivate},
    {"192.168.255.255", C::kPrivate},
    {"169.254.169.254", C::kLinkLocal},  // cloud metadata services live here
    {"100.64.0.1", C::kSharedAddressSpace},
    {"100.127.255.255", C::kSharedAddressSpace},
    {"224.0.0.1", C::kMulticast},
    {"239.255.255.250", C::kMulticast},
    {"192.0.2.1", C::kDocumentation},
    {"198.51.100.7", C::kDocumentation},
    {"203.0.113.200", C::kDocumentation},
    {"255.255.255.255", C::kBroadcast},
    {"255.255.255.254", C::kReserved},
    {"240.0.0.1", C::kReserved},
    {"192.0.0.8", C::kReserved},
    {"192.88.99.1", C::kReserved},
    {"198.18.0.1", C::kReserved},
    {"198.19.255.255", C::kReserved},
    // Public IPv6.
    {"2001:4860:4860::8888", C::kPublic},
    {"2606:4700:4700::1111", C::kPublic},
    {"2a00:1450:4001:80b::200e", C::kPublic},
    {"2001:200::1", C::kPublic},
    {"3ffe::1", C::kPublic},
    {"3fff:1000::1", C::kPublic},
    // Special IPv6.
    {"::", C::kUnspecified},
    {"::1", C::kLoopback},
    {"fc00::1", C::kPrivate},
    {"fd12:3456:789a::1", C::kPrivate},
    {"fec0::1", C::kPrivate},
    {"fe80::1", C::kLinkLocal},
    {"febf:ffff::1", C::kLinkLocal},
    {"ff02::1", C::kMulticast},
    {"ff0e::101", C::kMulticast},
    {"2001:db8::1", C::kDocumentation},
    {"2001:db8:ffff::1", C::kDocumentation},
    {"3fff::1", C::kDocumentation},
    {"3fff:fff::1", C::kDocumentation},
    {"100::1", C::kReserved},
    {"2001::1", C::kReserved},     // Teredo
    {"2001:10::1", C::kReserved},  // ORCHID
    {"2001:1ff::1", C::kReserved},
    {"4000::1", C::kReserved},
    {"1000::1", C::kReserved},
    {"::2", C::kUnspecified},  // IPv4-compatible 0.0.0.2
    {"64:ff9b:1::1", C::kPrivate},
    // IPv4 inside IPv6: classified by the IPv4 address.
    {"::ffff:127.0.0.1", C::kLoopback},
    {"::ffff:7f00:1", C::kLoopback},
    {"::ffff:10.1.2.3", C::kPrivate},
    {"::ffff:169.254.169.254", C::kLinkLocal},
    {"::ffff:0.0.0.0", C::kUnspecified},
    {"::ffff:255.255.255.255", C::kBroadcast},
    {"::ffff:8.8.8.8", C::kPublic},
    {"::127.0.0.1", C::kLoopback},
    {"::192.168.1.1", C::kPrivate},
    {"::8.8.8.8", C::kPublic},
    {"::ffff:0:127.0.0.1", C::kLoopback},
    {"::ffff:0:8.8.8.8", C::kPublic},
    {"64:ff9b::127.0.0.1", C::kLoopback},
    {"64:ff9b::10.0.0.1", C::kPrivate},
    {"64:ff9b::8.8.8.8", C::kPublic},
    {"2002:7f00:1::1", C::kLoopback},
    {"2002:a00:1::", C::kPrivate},
    {"2002:a9fe:a9fe::1", C::kLinkLocal},
    {"2002:808:808::1", C::kPublic},
};

TEST(AddressGuardTest, ClassifiesTheTable) {
  for (const Case& c : kCases) {
    EXPECT_EQ(Classify(c.address), c.expected) << c.address;
  }
}

TEST(AddressGuardTest, UnknownFamiliesAndShortBuffersAreNotPublic) {
  sockaddr_storage storage;
  std::memset(&storage, 0, sizeof(storage));
  storage.ss_family = AF_UNIX;
  EXPECT_EQ(ClassifyAddress(reinterpret_cast<const sockaddr*>(&storage), sizeof(storage)),
            C::kUnknownFamily);
  EXPECT_EQ(ClassifyAddress(nullptr, 0), C::kUnknownFamily);
  size_t length = 0;
  const sockaddr_storage v6 = ToSockaddr("2001:4860:4860::8888", &length);
  EXPECT_EQ(ClassifyAddress(reinterpret_cast<const sockaddr*>(&v6), sizeof(sockaddr_in)),
            C::kUnknownFamily);
}

TEST(AddressGuardTest, FormatsAndDescribes) {
  size_t length = 0;
  const sockaddr_storage v4 = ToSockaddr("127.0.0.1", &length);
  EXPECT_EQ(FormatAddress(reinterpret_cast<const sockaddr*>(&v4), length), "127.0.0.1");
  const sockaddr_storage v6 = ToSockaddr("::ffff:10.0.0.1", &length);
  EXPECT_EQ(FormatAddress(reinterpret_cast<const sockaddr*>(&v6), length), "::ffff:10.0.0.1");
  EXPECT_EQ(FormatAddress(nullptr, 0), "unknown address");
  EXPECT_EQ(DescribeAddressClass(C::kLoopback), "a loopback address");
  EXPECT_EQ(DescribeAddressClass(C::kPrivate), "a private address");
  EXPECT_EQ(DescribeAddressClass(C::kLinkLocal), "a link-local address");
  EXPECT_EQ(DescribeAddressClass(C::kUnspecified), "an unspecified address");
}

// Registration's check, on the URL's face: every rule with the message a user sees.
TEST(CheckWebhookUrlTest, RefusesMalformedUrlsWithTheReason) {
  const DestinationPolicy open{true, true};
  const auto message = [&](std::string_view url) {
    const model::Status s = CheckWebhookUrl(url, open);
    EXPECT_EQ(s.code(), model::StatusCode::kInvalidArgument) << url;
    return s.message();
  };
  EXPECT_EQ(message("not a url"), "url is not an absolute URL: not a url");
  EXPECT_EQ(message("ftp://example.com/x"), "url must use https (or http where allowed), not ftp");
  EXPECT_EQ(message("https:///path"), "url has no host: https:///path");
  EXPECT_EQ(message("https://user:pw@example.com/"), "url must not carry user information");
  EXPECT_EQ(message("https://example.com:99999/"), "url port must be 1 to 65535, not 99999");
  EXPECT_EQ(message("https://example.com:65536/"), "url port must be 1 to 65535, not 65536");
  EXPECT_EQ(message("https://example.com:0/"), "url port must be 1 to 65535, not 0");
  EXPECT_EQ(message("http://127.0.0.1:abc/v"), "url port must be 1 to 65535, not abc");
  EXPECT_EQ(message("http://127.0.0.1:18150:99/v"), "url port must be 1 to 65535, not 18150:99");
  EXPECT_EQ(message("http://127.0.0.1:+80"), "url port must be 1 to 65535, not +80");
  EXPECT_EQ(message("http://[::1]:8x/"), "url port must be 1 to 65535, not 8x");
  EXPECT_EQ(message("https://example.com/x#frag"),
            "url must not carry a fragment (#frag): receivers never see it");
  EXPECT_EQ(message("https://example.com/" + std::string(2048, 'a')),
            "url must be at most 2048 bytes");
  EXPECT_TRUE(CheckWebhookUrl("https://example.com/hooks?x=1", open).ok());
  EXPECT_TRUE(CheckWebhookUrl("https://example.com:65535/", open).ok());
  EXPECT_TRUE(CheckWebhookUrl("https://example.com:1/", open).ok());
  EXPECT_TRUE(CheckWebhookUrl("https://example.com:/", open).ok());  // the default port
  EXPECT_TRUE(CheckWebhookUrl("HTTPS://example.com/", open).ok());   // schemes ignore case
  EXPECT_TRUE(CheckWebhookUrl("https://example.com?x=1", open).ok());
}

TEST(IsTcpPortTest, TakesOneTo65535InDigitsOnly) {
  for (const char* port : {"1", "80", "8443", "65535", "00080"})
    EXPECT_TRUE(IsTcpPort(port)) << port;
  for (const char* port : {"", "0", "65536", "99999", "4294967297", "-1", "+80", "80a", " 80"}) {
    EXPECT_FALSE(IsTcpPort(port)) << port;
  }
}

TEST(CheckWebhookUrlTest, PlainHttpNeedsThePolicy) {
  const model::Status s = CheckWebhookUrl("http://example.com/", {false, false});
  EXPECT_EQ(s.code(), model::StatusCode::kUnprocessable);
  EXPECT_EQ(s.message(),
            "url must use https; plain http needs delivery.allow_http (or serve --dev)");
  EXPECT_TRUE(CheckWebhookUrl("http://example.com/", {true, false}).ok());
}

TEST(CheckWebhookUrlTest, HostsPrivateOnTheirFaceNeedThePolicyInEveryNumericForm) {
  const DestinationPolicy strict{true, false};
  for (const char* url :
       {"https://localhost/", "https://api.localhost./", "https://127.0.0.1/",
        "https://2130706433/", "https://0x7f.1/", "https://127.1/", "https://10.1.2.3/",
        "https://[::1]/", "https://[::ffff:192.168.0.1]/", "https://169.254.169.254/"}) {
    const model::Status s = CheckWebhookUrl(url, strict);
    EXPECT_EQ(s.code(), model::StatusCode::kUnprocessable) << url;
    EXPECT_NE(s.message().find("private destinations need delivery.allow_private_destinations"),
              std::string::npos)
        << url << ": " << s.message();
    EXPECT_TRUE(CheckWebhookUrl(url, {true, true}).ok()) << url;
  }
  EXPECT_EQ(CheckWebhookUrl("https://10.1.2.3/", strict).message(),
            "url host 10.1.2.3 is a private address; private destinations need "
            "delivery.allow_private_destinations (or serve --dev)");
  // A name is checked when it resolves, at connect time; here only its face counts.
  EXPECT_TRUE(CheckWebhookUrl("https://hooks.example.com/", strict).ok());
}

}  // namespace
}  // namespace pushhook::delivery
