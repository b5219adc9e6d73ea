// AsioClient against a TLS receiver on loopback with a certificate made for the test: https is
// verified against the system store by default, against ca_file when set, and by host name.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <future>
#include <thread>

#include "delivery/asio_client.h"

namespace pushhook::delivery {
namespace {

// A one-connection-at-a-time HTTPS responder: answers every request 200 "ok" and closes.
class TlsServer {
 public:
  // The certificate is self-signed, valid for IP 127.0.0.1 only.
  TlsServer() {
    // OpenSSL writes with write(2): a client that hung up must not kill the test with SIGPIPE.
    signal(SIGPIPE, SIG_IGN);
    key_ = EVP_EC_gen("P-256");
    cert_ = X509_new();
    X509_set_version(cert_, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert_), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert_), -60);
    X509_gmtime_adj(X509_getm_notAfter(cert_), 3600);
    X509_set_pubkey(cert_, key_);
    X509_NAME* name = X509_get_subject_name(cert_);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>("pushhook test"), -1, -1, 0);
    X509_set_issuer_name(cert_, name);
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, cert_, cert_, nullptr, nullptr, 0);
    for (const auto& [nid, value] : {std::pair{NID_subject_alt_name, "IP:127.0.0.1"},
                                     std::pair{NID_basic_constraints, "critical,CA:TRUE"}}) {
      X509_EXTENSION* extension = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
      X509_add_ext(cert_, extension, -1);
      X509_EXTENSION_free(extension);
    }
    X509_sign(cert_, key_, EVP_sha256());

    ctx_ = SSL_CTX_new(TLS_server_method());
    SSL_CTX_use_certificate(ctx_, cert_);
    SSL_CTX_use_PrivateKey(ctx_, key_);

    listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof(address);
    bind(listen_fd_, reinterpret_cast<sockaddr*>(&address), length);
    getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&address), &length);
    port_ = ntohs(address.sin_port);
    listen(listen_fd_, 16);
    thread_ = std::thread([this] { Serve(); });
  }

  ~TlsServer() {
    shutdown(listen_fd_, SHUT_RDWR);
    thread_.join();
    close(listen_fd_);
    SSL_CTX_free(ctx_);
    X509_free(cert_);
    EVP_PKEY_free(key_);
  }

  uint16_t port() const { return port_; }
  int requests() const { return requests_.load(); }

  // Writes the certificate as PEM to a file for ClientOptions::ca_file.
  std::string WriteCaFile() const {
    const std::string path = ::testing::TempDir() + "pushhook_tls_test_" +
                             std::to_string(getpid()) + "_" + std::to_string(port_) + ".pem";
    FILE* file = std::fopen(path.c_str(), "w");
    PEM_write_X509(file, cert_);
    std::fclose(file);
    return path;
  }

 private:
  void Serve() {
    while (true) {
      const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR) continue;
        return;
      }
      SSL* ssl = SSL_new(ctx_);
      SSL_set_fd(ssl, fd);
      if (SSL_accept(ssl) == 1) {
        std::string request;
        char chunk[4096];
        while (request.find("\r\n\r\n") == std::string::npos) {
          const int n = SSL_read(ssl, chunk, sizeof(chunk));
          if (n <= 0) break;
          request.append(chunk, static_cast<size_t>(n));
        }
        // A client that rejects the certificate may still complete the handshake (host names are
        // checked after it): only a request that arrives counts.
        if (request.find("\r\n\r\n") != std::string::npos) {
          requests_.fetch_add(1);
          const std::string_view response =
              "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
          SSL_write(ssl, response.data(), static_cast<int>(response.size()));
          SSL_shutdown(ssl);
        }
      }
      ERR_clear_error();
      SSL_free(ssl);
      close(fd);
    }
  }

  EVP_PKEY* key_ = nullptr;
  X509* cert_ = nullptr;
  SSL_CTX* ctx_ = nullptr;
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::thread thread_;
  std::atomic<int> requests_{0};
};

OutboundResult SendAndWait(HttpClient& client, const std::string& url) {
  OutboundRequest request;
  request.url = url;
  request.body = "{}";
  request.headers = {{"content-type", "application/json"}};
  std::promise<OutboundResult> promise;
  client.Send(std::move(request), [&](OutboundResult r) { promise.set_value(std::move(r)); });
  return promise.get_future().get();
}

ClientOptions LoopbackOptions() {
  ClientOptions options;
  options.allow_private_destinations = true;
  return options;
}

TEST(AsioClientTlsTest, RejectsACertificateTheSystemStoreDoesNotTrust) {
  TlsServer server;
  AsioClient client(LoopbackOptions());
  const OutboundResult result =
      SendAndWait(client, "https://127.0.0.1:" + std::to_string(server.port()) + "/");
  EXPECT_EQ(result.status, 0);
  EXPECT_EQ(result.error.rfind("TLS certificate verification failed: ", 0), 0u) << result.error;
  EXPECT_NE(result.error.find("self-signed"), std::string::npos) << result.error;
  EXPECT_EQ(server.requests(), 0);
}

TEST(AsioClientTlsTest, TrustsTheConfiguredCaFile) {
  TlsServer server;
  ClientOptions options = LoopbackOptions();
  options.ca_file = server.WriteCaFile();
  AsioClient client(options);
  const OutboundResult result =
      SendAndWait(client, "https://127.0.0.1:" + std::to_string(server.port()) + "/");
  EXPECT_EQ(result.status, 200) << result.error;
  EXPECT_EQ(result.body_prefix, "ok");
  std::remove(options.ca_file.c_str());
}

TEST(AsioClientTlsTest, ChecksTheHostName) {
  TlsServer server;
  ClientOptions options = LoopbackOptions();
  options.ca_file = server.WriteCaFile();
  AsioClient client(options);
  // The certificate names 127.0.0.1, not localhost.
  const OutboundResult result =
      SendAndWait(client, "https://localhost:" + std::to_string(server.port()) + "/");
  EXPECT_EQ(result.status, 0);
  EXPECT_EQ(result.error.rfind("TLS certificate verification failed: ", 0), 0u) << result.error;
  EXPECT_NE(result.error.find("localhost"), std::string::npos) << result.error;
  EXPECT_EQ(server.requests(), 0);
  std::remove(options.ca_file.c_str());
}

TEST(AsioClientTlsTest, AMissingCaFileIsNamed) {
  ClientOptions options = LoopbackOptions();
  options.ca_file = "/nonexistent/pushhook-ca.pem";
  AsioClient client(options);
  TlsServer server;
  const OutboundResult result =
      SendAndWait(client, "https://127.0.0.1:" + std::to_string(server.port()) + "/");
  EXPECT_EQ(result.status, 0);
  EXPECT_EQ(result.error.rfind("cannot use the CA file: ", 0), 0u) << result.error;
}

}  // namespace
}  // namespace pushhook::delivery
