// The server over TLS, with certificates made by the test (a CA and a leaf for IP 127.0.0.1) and
// libcurl as the client: HTTPS with keep-alive, TLS 1.2 as the floor, the files' errors named,
// a reload that new connections see and open ones survive, and what a TLS port does with plain
// HTTP, garbage and a broken handshake.
#include <curl/curl.h>
#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "http/server.h"
#include "http/testing/loopback_client.h"

namespace pushhook::http {
namespace {

// A key and a certificate, signed by `issuer` (or by itself when null).
struct Credential {
  EVP_PKEY* key = nullptr;
  X509* cert = nullptr;
  Credential() = default;
  Credential(const Credential&) = delete;
  Credential& operator=(const Credential&) = delete;
  ~Credential() {
    X509_free(cert);
    EVP_PKEY_free(key);
  }
};

void MakeCredential(Credential& out, const char* common_name, const Credential* issuer) {
  out.key = EVP_EC_gen("P-256");
  out.cert = X509_new();
  X509_set_version(out.cert, 2);
  static long serial = 1;
  ASN1_INTEGER_set(X509_get_serialNumber(out.cert), serial++);
  X509_gmtime_adj(X509_getm_notBefore(out.cert), -60);
  X509_gmtime_adj(X509_getm_notAfter(out.cert), 3600);
  X509_set_pubkey(out.cert, out.key);
  X509_NAME* name = X509_get_subject_name(out.cert);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(common_name), -1, -1, 0);
  X509* signer_cert = issuer ? issuer->cert : out.cert;
  X509_set_issuer_name(out.cert, X509_get_subject_name(signer_cert));
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, signer_cert, out.cert, nullptr, nullptr, 0);
  const std::pair<int, const char*> extensions[] = {
      issuer ? std::pair{NID_subject_alt_name, "IP:127.0.0.1"}
             : std::pair{NID_basic_constraints, "critical,CA:TRUE"},
  };
  for (const auto& [nid, value] : extensions) {
    X509_EXTENSION* extension = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
    X509_add_ext(out.cert, extension, -1);
    X509_EXTENSION_free(extension);
  }
  X509_sign(out.cert, issuer ? issuer->key : out.key, EVP_sha256());
}

void WriteCert(const std::string& path, X509* cert) {
  FILE* file = std::fopen(path.c_str(), "w");
  ASSERT_NE(file, nullptr);
  PEM_write_X509(file, cert);
  std::fclose(file);
}

void WriteKey(const std::string& path, EVP_PKEY* key) {
  FILE* file = std::fopen(path.c_str(), "w");
  ASSERT_NE(file, nullptr);
  PEM_write_PrivateKey(file, key, nullptr, nullptr, 0, nullptr, nullptr);
  std::fclose(file);
}

void WriteText(const std::string& path, const std::string& text) {
  FILE* file = std::fopen(path.c_str(), "w");
  ASSERT_NE(file, nullptr);
  std::fwrite(text.data(), 1, text.size(), file);
  std::fclose(file);
}

// One POST trusting only the CA in `ca_file`.
testing::CurlReply Post(CURL* handle, const std::string& url, const std::string& ca_file,
                        const std::string& body = "hello") {
  return testing::CurlPost(handle, url, body, ca_file);
}

using testing::CurlConnects;

// Writes `bytes` on a fresh connection (then hangs up if `hang_up`) and reads all the server
// sends until it closes.
std::string Exchange(uint16_t port, const std::string& bytes, bool hang_up = false) {
  return testing::Exchange(port, bytes, {}, 1, hang_up);
}

class ServerTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // OpenSSL writes with write(2): a client that hung up must not kill the test with SIGPIPE.
    signal(SIGPIPE, SIG_IGN);
    dir_ = ::testing::TempDir() + "pushhook_server_tls_" + std::to_string(::getpid()) + "_" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::create_directories(dir_);
    MakeCredential(ca_one_, "pushhook test CA one", nullptr);
    MakeCredential(ca_two_, "pushhook test CA two", nullptr);
    MakeCredential(leaf_one_, "leaf one", &ca_one_);
    MakeCredential(leaf_two_, "leaf two", &ca_two_);
    WriteCert(Path("ca-one.pem"), ca_one_.cert);
    WriteCert(Path("ca-two.pem"), ca_two_.cert);
    WriteCert(Path("cert.pem"), leaf_one_.cert);
    WriteKey(Path("key.pem"), leaf_one_.key);
  }

  void TearDown() override {
    if (server_) server_->Stop();
    std::filesystem::remove_all(dir_);
  }

  std::string Path(const std::string& name) const { return dir_ + "/" + name; }

  // A server over TLS that answers every request 200 with the body's length.
  void StartServer() {
    server_ = std::make_unique<Server>(
        ServerLimits{},
        [](Request&& r, Responder respond) {
          respond(Response::Json(200, "{\"len\":" + std::to_string(r.body.size()) + "}"));
        },
        [](std::string_view path, Response& response) {
          if (path == "/v1/events") response.With("access-control-allow-origin", "*");
        });
    ASSERT_TRUE(server_->EnableTls(Path("cert.pem"), Path("key.pem")).ok());
    ASSERT_TRUE(server_->Listen("127.0.0.1:0").ok());
    server_->Start(2);
    url_ = "https://127.0.0.1:" + std::to_string(server_->port()) + "/v1/events";
  }

  std::string dir_;
  Credential ca_one_, ca_two_, leaf_one_, leaf_two_;
  std::unique_ptr<Server> server_;
  std::string url_;
};

TEST_F(ServerTlsTest, AnswersOverHttpsWithKeepAlive) {
  StartServer();
  CURL* curl = curl_easy_init();
  for (int i = 0; i < 3; ++i) {
    const testing::CurlReply r =
        Post(curl, url_, Path("ca-one.pem"), std::string(static_cast<size_t>(i), 'x'));
    ASSERT_EQ(r.code, CURLE_OK) << curl_easy_strerror(r.code);
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, "{\"len\":" + std::to_string(i) + "}");
  }
  EXPECT_EQ(CurlConnects(curl), 0) << "the last request should have reused the connection";
  // A client that does not trust the CA is refused by its own check: the certificate is ours.
  curl_easy_reset(curl);
  EXPECT_EQ(Post(curl, url_, Path("ca-two.pem")).code, CURLE_PEER_FAILED_VERIFICATION);
  curl_easy_cleanup(curl);
}

TEST_F(ServerTlsTest, RefusesTlsBelow12) {
  StartServer();
  for (const auto& [version, accepted] :
       {std::pair{TLS1_VERSION, false}, std::pair{TLS1_1_VERSION, false},
        std::pair{TLS1_2_VERSION, true}, std::pair{TLS1_3_VERSION, true}}) {
    SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
    // Level 0 lets this client offer the old versions: the refusal must come from the server.
    SSL_CTX_set_security_level(ctx, 0);
    SSL_CTX_set_cipher_list(ctx, "ALL:@SECLEVEL=0");
    SSL_CTX_set_min_proto_version(ctx, version);
    SSL_CTX_set_max_proto_version(ctx, version);
    testing::LoopbackSocket socket(server_->port());
    ASSERT_TRUE(socket.connected());
    SSL* ssl = SSL_new(ctx);
    SSL_set_fd(ssl, socket.fd());
    EXPECT_EQ(SSL_connect(ssl) == 1, accepted) << "TLS version 0x" << std::hex << version;
    ERR_clear_error();
    SSL_free(ssl);
    SSL_CTX_free(ctx);
  }
}

TEST_F(ServerTlsTest, PlainHttpOnTheTlsPortIsTold400UseHttps) {
  StartServer();
  const std::string got = Exchange(
      server_->port(), "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}");
  EXPECT_EQ(got.rfind("HTTP/1.1 400 Bad Request\r\n", 0), 0u) << got;
  EXPECT_NE(got.find(R"("code":"https_required")"), std::string::npos) << got;
  EXPECT_NE(got.find("https://"), std::string::npos) << got;
  EXPECT_NE(got.find("Connection: close\r\n"), std::string::npos) << got;
  // The ingest route's own-answer headers apply to this answer too.
  EXPECT_NE(got.find("access-control-allow-origin: *\r\n"), std::string::npos) << got;
  // Still serving HTTPS afterwards.
  CURL* curl = curl_easy_init();
  EXPECT_EQ(Post(curl, url_, Path("ca-one.pem")).status, 200);
  curl_easy_cleanup(curl);
}

TEST_F(ServerTlsTest, GarbageAndBrokenHandshakesAreHungUpOnQuietly) {
  StartServer();
  EXPECT_EQ(Exchange(server_->port(), std::string("\x00\x01\x02\x03garbage", 11)), "<closed>");
  // A handshake record with nonsense in it: OpenSSL sends an alert, and the connection ends.
  const std::string hello_junk = std::string("\x16\x03\x01\x00\x20", 5) + std::string(32, 'z');
  const std::string alert = Exchange(server_->port(), hello_junk);
  EXPECT_EQ(alert.find("HTTP/"), std::string::npos) << alert;
  EXPECT_EQ(alert.find("<timeout>"), std::string::npos) << "the server kept the connection open";
  // A client that gives up in the middle of the handshake.
  EXPECT_EQ(Exchange(server_->port(), std::string("\x16\x03\x01", 3), true), "<closed>");
  CURL* curl = curl_easy_init();
  EXPECT_EQ(Post(curl, url_, Path("ca-one.pem")).status, 200) << "the server is still up";
  curl_easy_cleanup(curl);
}

TEST_F(ServerTlsTest, ReloadServesTheNewCertificateToNewConnectionsAndKeepsOpenOnes) {
  StartServer();
  CURL* open = curl_easy_init();
  ASSERT_EQ(Post(open, url_, Path("ca-one.pem")).status, 200);

  WriteCert(Path("cert.pem"), leaf_two_.cert);
  WriteKey(Path("key.pem"), leaf_two_.key);
  ASSERT_TRUE(server_->ReloadTls().ok());

  // A new connection gets the certificate of CA two, which a client of CA one refuses.
  CURL* fresh = curl_easy_init();
  const testing::CurlReply refused = Post(fresh, url_, Path("ca-one.pem"));
  EXPECT_EQ(refused.code, CURLE_PEER_FAILED_VERIFICATION);
  curl_easy_reset(fresh);
  EXPECT_EQ(Post(fresh, url_, Path("ca-two.pem")).status, 200);
  curl_easy_cleanup(fresh);

  // The connection opened before the reload goes on, on its old certificate.
  const testing::CurlReply again = Post(open, url_, Path("ca-one.pem"), "still here");
  EXPECT_EQ(again.status, 200);
  EXPECT_EQ(again.body, "{\"len\":10}");
  EXPECT_EQ(CurlConnects(open), 0) << "the open connection was dropped by the reload";
  curl_easy_cleanup(open);
}

// The gate over TLS: an idle keep-alive connection whose client is not reading (curl keeps it in
// its pool) is closed at once, so Drain() does not wait for it.
TEST_F(ServerTlsTest, DrainClosesAnIdleTlsConnectionAtOnce) {
  StartServer();
  CURL* idle = curl_easy_init();
  ASSERT_EQ(Post(idle, url_, Path("ca-one.pem")).status, 200);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(server_->Drain(start + std::chrono::seconds(5)));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(500));
  curl_easy_cleanup(idle);
}

TEST_F(ServerTlsTest, AFailedReloadKeepsTheOldCertificateAndSaysWhy) {
  StartServer();
  WriteKey(Path("key.pem"), leaf_two_.key);  // no longer the certificate's key
  const model::Status status = server_->ReloadTls();
  EXPECT_EQ(status.code(), model::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "TLS key file " + Path("key.pem") +
                                  " does not match the certificate in " + Path("cert.pem"));
  CURL* curl = curl_easy_init();
  EXPECT_EQ(Post(curl, url_, Path("ca-one.pem")).status, 200);
  curl_easy_cleanup(curl);
}

TEST_F(ServerTlsTest, BadFilesAreRefusedWithAReasonNamingTheFile) {
  Server server(ServerLimits{},
                [](Request&&, Responder respond) { respond(Response::Empty(204)); });
  const auto message = [&](const std::string& cert, const std::string& key) {
    const model::Status s = server.EnableTls(cert, key);
    EXPECT_EQ(s.code(), model::StatusCode::kInvalidArgument) << s.message();
    return s.message();
  };
  EXPECT_EQ(
      message(Path("missing.pem"), Path("key.pem")),
      "cannot read TLS certificate file " + Path("missing.pem") + ": No such file or directory");
  EXPECT_EQ(message(Path("cert.pem"), Path("missing.pem")),
            "cannot read TLS key file " + Path("missing.pem") + ": No such file or directory");
  EXPECT_EQ(message(dir_, Path("key.pem")),
            "cannot read TLS certificate file " + dir_ + ": Is a directory");
  WriteText(Path("junk.pem"), "not a certificate\n");
  EXPECT_EQ(message(Path("junk.pem"), Path("key.pem")),
            "TLS certificate file " + Path("junk.pem") + " holds no PEM certificate");
  EXPECT_EQ(message(Path("cert.pem"), Path("junk.pem")),
            "TLS key file " + Path("junk.pem") + " holds no PEM private key");
  // The certificate given as the key, and the key as the certificate.
  EXPECT_EQ(message(Path("key.pem"), Path("cert.pem")),
            "TLS certificate file " + Path("key.pem") + " holds no PEM certificate");
  WriteKey(Path("other-key.pem"), leaf_two_.key);
  EXPECT_EQ(message(Path("cert.pem"), Path("other-key.pem")),
            "TLS key file " + Path("other-key.pem") + " does not match the certificate in " +
                Path("cert.pem"));
  {
    FILE* file = std::fopen(Path("encrypted.pem").c_str(), "w");
    ASSERT_NE(file, nullptr);
    PEM_write_PrivateKey(file, leaf_one_.key, EVP_aes_128_cbc(),
                         reinterpret_cast<const unsigned char*>("secret"), 6, nullptr, nullptr);
    std::fclose(file);
  }
  EXPECT_EQ(message(Path("cert.pem"), Path("encrypted.pem")),
            "TLS key file " + Path("encrypted.pem") +
                " is encrypted: give the key unencrypted, readable only by the server's user");
  EXPECT_TRUE(server.EnableTls(Path("cert.pem"), Path("key.pem")).ok());
}

// A chain file (leaf then intermediate) is served whole: a client that trusts only the root
// verifies the leaf through the intermediate.
TEST_F(ServerTlsTest, ServesTheWholeChainOfTheCertificateFile) {
  Credential root, intermediate, leaf;
  MakeCredential(root, "root", nullptr);
  // An intermediate is a CA (as a self-signed one is made), then signed by the root instead.
  MakeCredential(intermediate, "intermediate", nullptr);
  X509_set_issuer_name(intermediate.cert, X509_get_subject_name(root.cert));
  X509_sign(intermediate.cert, root.key, EVP_sha256());
  MakeCredential(leaf, "leaf", &intermediate);
  WriteCert(Path("root.pem"), root.cert);
  {
    FILE* file = std::fopen(Path("cert.pem").c_str(), "w");
    ASSERT_NE(file, nullptr);
    PEM_write_X509(file, leaf.cert);
    PEM_write_X509(file, intermediate.cert);
    std::fclose(file);
  }
  WriteKey(Path("key.pem"), leaf.key);
  StartServer();
  CURL* curl = curl_easy_init();
  const testing::CurlReply r = Post(curl, url_, Path("root.pem"));
  EXPECT_EQ(r.code, CURLE_OK) << curl_easy_strerror(r.code);
  EXPECT_EQ(r.status, 200);
  curl_easy_cleanup(curl);
}

}  // namespace
}  // namespace pushhook::http
