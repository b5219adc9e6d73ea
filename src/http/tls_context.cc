#include "http/tls_context.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace pushhook::http {
namespace {

namespace ssl = boost::asio::ssl;

// TLS 1.2 suites with forward secrecy and authenticated encryption (Mozilla's "intermediate"
// list less the DHE ones, which need parameters of their own). TLS 1.3 keeps OpenSSL's suites,
// which are all of that kind.
constexpr const char* kTls12Ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

// The reason OpenSSL gave last, and an empty error queue for whoever comes next on this thread.
std::string OpenSslReason() {
  const unsigned long code = ERR_peek_last_error();
  const char* text = code == 0 ? nullptr : ERR_reason_error_string(code);
  std::string reason = text != nullptr ? text : "unknown error";
  ERR_clear_error();
  return reason;
}

// The whole file, or why it cannot be read (errno's words).
model::StatusOr<std::string> ReadFile(const std::string& what, const std::string& path) {
  FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) {
    return model::InvalidArgument("cannot read " + what + " " + path + ": " + std::strerror(errno));
  }
  std::string text;
  char chunk[16384];
  size_t n;
  while ((n = std::fread(chunk, 1, sizeof chunk, file)) > 0) {
    text.append(chunk, n);
    if (text.size() > (1 << 20)) {
      std::fclose(file);
      return model::InvalidArgument(what + " " + path + " is larger than 1 MiB: not a PEM file");
    }
  }
  const int error = std::ferror(file) ? errno : 0;
  std::fclose(file);
  if (error != 0) {
    return model::InvalidArgument("cannot read " + what + " " + path + ": " + std::strerror(error));
  }
  return text;
}

// An encrypted key would make OpenSSL ask for a passphrase on the terminal: refuse instead.
int NoPassphrase(char*, int, int, void*) { return -1; }

}  // namespace

TlsCredentials::~TlsCredentials() {
  X509_free(cert_);
  if (chain_ != nullptr) sk_X509_pop_free(chain_, X509_free);
  EVP_PKEY_free(key_);
}

model::StatusOr<std::shared_ptr<const TlsCredentials>> TlsCredentials::Load(
    const std::string& cert_file, const std::string& key_file) {
  auto cert_text = ReadFile("TLS certificate file", cert_file);
  if (!cert_text.ok()) return cert_text.status();
  auto key_text = ReadFile("TLS key file", key_file);
  if (!key_text.ok()) return key_text.status();

  std::shared_ptr<TlsCredentials> credentials(new TlsCredentials());
  {
    BIO* bio = BIO_new_mem_buf(cert_text->data(), static_cast<int>(cert_text->size()));
    credentials->cert_ = PEM_read_bio_X509_AUX(bio, nullptr, NoPassphrase, nullptr);
    credentials->chain_ = sk_X509_new_null();
    while (credentials->cert_ != nullptr) {
      X509* next = PEM_read_bio_X509(bio, nullptr, NoPassphrase, nullptr);
      if (next == nullptr) break;
      sk_X509_push(credentials->chain_, next);
    }
    BIO_free(bio);
    ERR_clear_error();  // the end of the file ends the loop with an error
  }
  if (credentials->cert_ == nullptr) {
    return model::InvalidArgument("TLS certificate file " + cert_file +
                                  " holds no PEM certificate");
  }
  {
    BIO* bio = BIO_new_mem_buf(key_text->data(), static_cast<int>(key_text->size()));
    credentials->key_ = PEM_read_bio_PrivateKey(bio, nullptr, NoPassphrase, nullptr);
    BIO_free(bio);
    ERR_clear_error();
  }
  if (credentials->key_ == nullptr) {
    if (key_text->find("ENCRYPTED") != std::string::npos) {
      return model::InvalidArgument("TLS key file " + key_file +
                                    " is encrypted: give the key unencrypted, readable only by "
                                    "the server's user");
    }
    return model::InvalidArgument("TLS key file " + key_file + " holds no PEM private key");
  }
  if (X509_check_private_key(credentials->cert_, credentials->key_) != 1) {
    ERR_clear_error();
    return model::InvalidArgument("TLS key file " + key_file +
                                  " does not match the certificate in " + cert_file);
  }
  if (RAND_bytes(credentials->ticket_keys_.data(),
                 static_cast<int>(credentials->ticket_keys_.size())) != 1) {
    return model::Internal("cannot make TLS session ticket keys: " + OpenSslReason());
  }
  // What OpenSSL refuses to serve (a key below its security level, say) is found now, not at the
  // first handshake.
  SSL_CTX* probe = SSL_CTX_new(TLS_server_method());
  const bool usable = probe != nullptr && SSL_CTX_use_certificate(probe, credentials->cert_) == 1 &&
                      SSL_CTX_use_PrivateKey(probe, credentials->key_) == 1;
  const std::string reason = usable ? "" : OpenSslReason();
  SSL_CTX_free(probe);
  if (!usable) {
    return model::InvalidArgument("TLS certificate file " + cert_file +
                                  " cannot be served: " + reason);
  }
  return std::shared_ptr<const TlsCredentials>(std::move(credentials));
}

std::shared_ptr<ssl::context> NewServerContext(const TlsCredentials& credentials) {
  auto context = std::make_shared<ssl::context>(ssl::context::tls_server);
  SSL_CTX* native = context->native_handle();
  SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION);
  SSL_CTX_set_options(
      native, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  SSL_CTX_set_cipher_list(native, kTls12Ciphers);
  SSL_CTX_use_certificate(native, credentials.cert_);
  for (int i = 0; i < sk_X509_num(credentials.chain_); ++i) {
    SSL_CTX_add1_chain_cert(native, sk_X509_value(credentials.chain_, i));
  }
  SSL_CTX_use_PrivateKey(native, credentials.key_);
  SSL_CTX_set_tlsext_ticket_keys(native,
                                 const_cast<unsigned char*>(credentials.ticket_keys_.data()),
                                 static_cast<long>(credentials.ticket_keys_.size()));
  ERR_clear_error();
  return context;
}

}  // namespace pushhook::http
