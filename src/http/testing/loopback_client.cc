#include "http/testing/loopback_client.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <thread>

namespace pushhook::http::testing {
namespace {

size_t Collect(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

size_t Occurrences(const std::string& text, std::string_view what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

}  // namespace

LoopbackSocket::LoopbackSocket(uint16_t port) {
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  EXPECT_GE(fd_, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    Close();
    return;
  }
  timeval timeout{5, 0};
  EXPECT_EQ(::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout), 0);
}

void LoopbackSocket::Send(std::string_view bytes) {
  ASSERT_TRUE(connected());
  EXPECT_EQ(::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(bytes.size()));
}

void LoopbackSocket::WaitAcknowledged() {
  ASSERT_TRUE(connected());
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  for (;;) {
    int unacknowledged = 0;
    ASSERT_EQ(::ioctl(fd_, SIOCOUTQ, &unacknowledged), 0);
    if (unacknowledged == 0) return;
    ASSERT_LT(std::chrono::steady_clock::now(), give_up)
        << unacknowledged << " bytes sent were not acknowledged by the server's kernel";
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

void LoopbackSocket::HangUp() { EXPECT_EQ(::shutdown(fd_, SHUT_WR), 0); }

void LoopbackSocket::Close() {
  if (fd_ >= 0) static_cast<void>(::close(fd_));
  fd_ = -1;
}

std::string LoopbackSocket::Receive(std::string_view until, int count) {
  std::string got;
  char buffer[4096];
  while (until.empty() || Occurrences(got, until) < static_cast<size_t>(count)) {
    const ssize_t n = ::recv(fd_, buffer, sizeof buffer, 0);
    if (n == 0) return got + "<closed>";
    if (n < 0) return got + (errno == EAGAIN || errno == EWOULDBLOCK ? "<timeout>" : "<closed>");
    got.append(buffer, static_cast<size_t>(n));
  }
  return got;
}

std::string Exchange(uint16_t port, std::string_view bytes, std::string_view until, int count,
                     bool hang_up) {
  LoopbackSocket socket(port);
  EXPECT_TRUE(socket.connected());
  socket.Send(bytes);
  if (hang_up) socket.HangUp();
  return socket.Receive(until, count);
}

CurlReply CurlPost(CURL* handle, const std::string& url, const std::string& body,
                   const std::string& ca_file) {
  CurlReply reply;
  curl_easy_setopt(handle, CURLOPT_URL, url.c_str());
  if (!ca_file.empty()) {
    curl_easy_setopt(handle, CURLOPT_CAINFO, ca_file.c_str());
    curl_easy_setopt(handle, CURLOPT_CAPATH, nullptr);
  }
  curl_easy_setopt(handle, CURLOPT_POSTFIELDS, body.c_str());
  curl_easy_setopt(handle, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
  curl_easy_setopt(handle, CURLOPT_WRITEFUNCTION, Collect);
  curl_easy_setopt(handle, CURLOPT_WRITEDATA, &reply.body);
  curl_easy_setopt(handle, CURLOPT_TIMEOUT_MS, 5000L);
  reply.code = curl_easy_perform(handle);
  curl_easy_getinfo(handle, CURLINFO_RESPONSE_CODE, &reply.status);
  return reply;
}

long CurlConnects(CURL* handle) {
  long connects = -1;
  curl_easy_getinfo(handle, CURLINFO_NUM_CONNECTS, &connects);
  return connects;
}

}  // namespace pushhook::http::testing
