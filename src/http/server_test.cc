#include "http/server.h"

#include <curl/curl.h>
#include <gtest/gtest.h>

#include <thread>

namespace pushhook::http {
namespace {

size_t Collect(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

struct Reply {
  long status = 0;
  std::string body;
};

// One request over loopback with libcurl; `handle` is reused so keep-alive is exercised.
Reply Post(CURL* handle, const std::string& url, const std::string& body) {
  Reply reply;
  curl_easy_setopt(handle, CURLOPT_URL, url.c_str());
  curl_easy_setopt(handle, CURLOPT_POSTFIELDS, body.c_str());
  curl_easy_setopt(handle, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
  curl_easy_setopt(handle, CURLOPT_WRITEFUNCTION, Collect);
  curl_easy_setopt(handle, CURLOPT_WRITEDATA, &reply.body);
  EXPECT_EQ(curl_easy_perform(handle), CURLE_OK);
  curl_easy_getinfo(handle, CURLINFO_RESPONSE_CODE, &reply.status);
  return reply;
}

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ServerLimits limits;
    limits.max_body_bytes = 1000;
    server_ = std::make_unique<Server>(limits, [](Request&& r, Responder respond) {
      // Answer from another thread, as ingest does after its commit.
      std::thread([r = std::move(r), respond = std::move(respond)] {
        respond(Response::Json(200, "{\"len\":" + std::to_string(r.body.size()) + ",\"q\":\"" +
                                        r.QueryParam("q").value_or("") + "\"}"));
      }).detach();
    });
    ASSERT_TRUE(server_->Listen("127.0.0.1:0").ok());
    server_->Start(2);
    url_ = "http://127.0.0.1:" + std::to_string(server_->port()) + "/x";
    curl_ = curl_easy_init();
  }
  void TearDown() override {
    curl_easy_cleanup(curl_);
    server_->Stop();
  }

  std::unique_ptr<Server> server_;
  std::string url_;
  CURL* curl_ = nullptr;
};

TEST_F(ServerTest, AnswersFromAnotherThreadOverOneKeepAliveConnection) {
  for (int i = 0; i < 5; ++i) {
    const Reply r = Post(curl_, url_ + "?q=a%20b", std::string(static_cast<size_t>(i), 'x'));
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, "{\"len\":" + std::to_string(i) + ",\"q\":\"a b\"}");
  }
  long connects = -1;
  curl_easy_getinfo(curl_, CURLINFO_NUM_CONNECTS, &connects);
  EXPECT_EQ(connects, 0) << "the last request should have reused the connection";
}

TEST_F(ServerTest, BodyOverTheLimitIs413) {
  const Reply r = Post(curl_, url_, std::string(1001, 'x'));
  EXPECT_EQ(r.status, 413);
  EXPECT_NE(r.body.find(R"("code":"payload_too_large")"), std::string::npos);
  EXPECT_EQ(Post(curl_, url_, std::string(1000, 'x')).status, 200);
}

TEST(SplitHostPortTest, ParsesV4V6AndRejectsJunk) {
  std::string host;
  uint16_t port = 0;
  ASSERT_TRUE(SplitHostPort("127.0.0.1:8080", &host, &port));
  EXPECT_EQ(host, "127.0.0.1");
  EXPECT_EQ(port, 8080);
  ASSERT_TRUE(SplitHostPort("[::1]:0", &host, &port));
  EXPECT_EQ(host, "::1");
  EXPECT_FALSE(SplitHostPort("127.0.0.1", &host, &port));
  EXPECT_FALSE(SplitHostPort("127.0.0.1:99999", &host, &port));
  EXPECT_FALSE(SplitHostPort(":80", &host, &port));
  EXPECT_FALSE(SplitHostPort("h:8x", &host, &port));
}

}  // namespace
}  // namespace pushhook::http
