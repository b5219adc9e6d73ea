// The server side of TLS, private to src/http: a certificate chain and its key read from PEM
// files and checked once, then turned into as many OpenSSL contexts as the server has threads
// (one each, as the server is per-thread, so that handshakes on different threads share no
// context). TLS 1.2 and 1.3 only, forward-secret AEAD ciphers only.
//
// Thread safety: TlsCredentials is immutable once loaded and may be shared by any threads; each
// context returned by NewServerContext() is meant for one thread's connections.
#pragma once

#include <array>
#include <boost/asio/ssl/context.hpp>
#include <memory>
#include <string>

#include "model/status.h"

struct x509_st;
struct evp_pkey_st;
struct stack_st_X509;

namespace pushhook::http {

class TlsCredentials {
 public:
  // Reads and checks the two files. InvalidArgument with a one-line reason that names the file:
  // missing or unreadable, no PEM certificate or key in it, an encrypted key, a key that does not
  // match the certificate, or a certificate OpenSSL will not serve (a key too weak).
  static model::StatusOr<std::shared_ptr<const TlsCredentials>> Load(const std::string& cert_file,
                                                                     const std::string& key_file);
  ~TlsCredentials();
  TlsCredentials(const TlsCredentials&) = delete;
  TlsCredentials& operator=(const TlsCredentials&) = delete;

 private:
  TlsCredentials() = default;
  friend std::shared_ptr<boost::asio::ssl::context> NewServerContext(const TlsCredentials&);

  x509_st* cert_ = nullptr;         // the leaf
  stack_st_X509* chain_ = nullptr;  // intermediates, in file order
  evp_pkey_st* key_ = nullptr;
  // Session tickets that every context of one load can open, so that a client resumes on
  // whichever thread its next connection lands; a reload makes new ones.
  std::array<unsigned char, 80> ticket_keys_{};
};

// A server context holding `credentials`. Cannot fail once Load() succeeded (short of memory).
std::shared_ptr<boost::asio::ssl::context> NewServerContext(const TlsCredentials& credentials);

}  // namespace pushhook::http
