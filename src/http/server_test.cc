#include "http/server.h"

#include <curl/curl.h>
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "http/testing/loopback_client.h"

namespace pushhook::http {
namespace {

using testing::CurlConnects;
using testing::CurlPost;
using testing::Exchange;
using testing::LoopbackSocket;

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ServerLimits limits;
    limits.max_body_bytes = 1000;
    server_ = std::make_unique<Server>(limits, [this](Request&& r, Responder respond) {
      // Answer from another thread, as ingest does after its commit.
      std::lock_guard lock(answering_mu_);
      answering_.emplace_back([r = std::move(r), respond = std::move(respond)] {
        respond(Response::Json(200, "{\"len\":" + std::to_string(r.body.size()) + ",\"q\":\"" +
                                        r.QueryParam("q").value_or("") + "\"}"));
      });
    });
    ASSERT_TRUE(server_->Listen("127.0.0.1:0").ok());
    server_->Start(2);
    url_ = "http://127.0.0.1:" + std::to_string(server_->port()) + "/x";
    curl_ = curl_easy_init();
  }
  void TearDown() override {
    curl_easy_cleanup(curl_);
    // A thread still holding a connection's responder must not outlive the server.
    std::vector<std::thread> answering;
    {
      std::lock_guard lock(answering_mu_);
      answering.swap(answering_);
    }
    for (std::thread& t : answering) t.join();
    server_->Stop();
  }

  std::unique_ptr<Server> server_;
  std::string url_;
  CURL* curl_ = nullptr;
  std::mutex answering_mu_;
  std::vector<std::thread> answering_;  // guarded by answering_mu_
};

TEST_F(ServerTest, AnswersFromAnotherThreadOverOneKeepAliveConnection) {
  for (int i = 0; i < 5; ++i) {
    const auto r = CurlPost(curl_, url_ + "?q=a%20b", std::string(static_cast<size_t>(i), 'x'));
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, "{\"len\":" + std::to_string(i) + ",\"q\":\"a b\"}");
  }
  EXPECT_EQ(CurlConnects(curl_), 0) << "the last request should have reused the connection";
}

TEST_F(ServerTest, BodyOverTheLimitIs413) {
  const auto r = CurlPost(curl_, url_, std::string(1001, 'x'));
  EXPECT_EQ(r.status, 413);
  EXPECT_NE(r.body.find(R"("code":"payload_too_large")"), std::string::npos);
  EXPECT_EQ(CurlPost(curl_, url_, std::string(1000, 'x')).status, 200);
}

// A handler that throws answers its request 500 (once, even when it answered before throwing),
// and the server goes on serving: one bug must not end every tenant's service.
TEST(ServerFaultTest, AHandlerThatThrowsCostsItsRequestA500NotTheProcess) {
  Server server(ServerLimits{}, [](Request&& r, Responder respond) {
    if (r.path == "/throw") throw std::runtime_error("a bug");
    if (r.path == "/answer-then-throw") {
      respond(Response::Json(200, R"({"first":true})"));
      throw std::runtime_error("a bug after the answer");
    }
    respond(Response::Json(200, R"({"ok":true})"));
  });
  ASSERT_TRUE(server.Listen("127.0.0.1:0").ok());
  server.Start(2);
  const std::string base = "http://127.0.0.1:" + std::to_string(server.port());
  CURL* curl = curl_easy_init();
  const auto thrown = CurlPost(curl, base + "/throw", "");
  EXPECT_EQ(thrown.status, 500);
  EXPECT_EQ(
      thrown.body,
      R"({"error":{"code":"internal","message":"internal error; it is in the server's log"}})");
  const auto answered = CurlPost(curl, base + "/answer-then-throw", "");
  EXPECT_EQ(answered.status, 200);
  EXPECT_EQ(answered.body, R"({"first":true})");
  const auto next = CurlPost(curl, base + "/fine", "");
  EXPECT_EQ(next.status, 200);
  EXPECT_EQ(next.body, R"({"ok":true})");
  curl_easy_cleanup(curl);
  server.Stop();
}

// The answer as it goes on the wire, which the server writes itself: pipelined requests answered
// in order (the second one's bytes arrive with the first's), Content-Length except on 204, the
// Connection header HTTP/1.0 and "Connection: close" need, and no line break from a handler's
// header value reaching the wire.
TEST(ServerWireTest, PipelinedAnswersInOrderWithTheRightFraming) {
  Server server(ServerLimits{}, [](Request&& r, Responder respond) {
    if (r.path == "/empty") {
      return respond(Response::Empty(204).With("x-note", "a\r\nx-injected: 1"));
    }
    respond(Response::Json(200, "{\"body\":\"" + r.body + "\"}"));
  });
  ASSERT_TRUE(server.Listen("127.0.0.1:0").ok());
  server.Start(2);

  const std::string pipelined =
      "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
      "GET /empty HTTP/1.1\r\nHost: x\r\n\r\n"
      "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\nbye";
  const std::string got = Exchange(server.port(), pipelined, "HTTP/1.1 ", 3);
  const size_t first = got.find("HTTP/1.1 200 OK\r\n");
  const size_t second = got.find("HTTP/1.1 204 No Content\r\n");
  const size_t third = got.find("HTTP/1.1 200 OK\r\n", first + 1);
  ASSERT_NE(first, std::string::npos) << got;
  ASSERT_NE(second, std::string::npos) << got;
  ASSERT_NE(third, std::string::npos) << got;
  EXPECT_LT(first, second);
  EXPECT_LT(second, third);
  const std::string one = got.substr(first, second - first);
  const std::string two = got.substr(second, third - second);
  const std::string three = got.substr(third);
  EXPECT_NE(one.find("Content-Length: 16\r\n"), std::string::npos) << one;
  EXPECT_NE(one.find("\r\n\r\n{\"body\":\"hello\"}"), std::string::npos) << one;
  EXPECT_EQ(one.find("Connection:"), std::string::npos) << one;
  EXPECT_EQ(two.find("Content-Length"), std::string::npos) << two;
  EXPECT_NE(two.find("x-note: ax-injected: 1\r\n"), std::string::npos) << two;
  EXPECT_EQ(two.find("\r\nx-injected"), std::string::npos) << two;
  EXPECT_NE(three.find("Connection: close\r\n"), std::string::npos) << three;
  EXPECT_NE(three.find("{\"body\":\"bye\"}"), std::string::npos) << three;

  // HTTP/1.0 asking to keep the connection is told that it stays open, and it does.
  const std::string old = Exchange(server.port(),
                                   "POST /echo HTTP/1.0\r\nConnection: keep-alive\r\n"
                                   "Content-Length: 1\r\n\r\na"
                                   "POST /echo HTTP/1.0\r\nContent-Length: 1\r\n\r\nb",
                                   "HTTP/1.0 200 OK", 2);
  EXPECT_EQ(old.find("HTTP/1.0 200 OK"), 0u) << old;
  EXPECT_NE(old.find("Connection: keep-alive\r\n"), std::string::npos) << old;
  EXPECT_NE(old.find("{\"body\":\"b\"}"), std::string::npos) << old;

  // A HEAD's answer says how long the body would be and leaves it out: the next answer follows
  // its header at once.
  const std::string head = Exchange(server.port(),
                                    "HEAD /echo HTTP/1.1\r\nHost: x\r\n\r\n"
                                    "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                                    "Connection: close\r\n\r\nhi",
                                    "HTTP/1.1 ", 2);
  EXPECT_EQ(head.find("HTTP/1.1 200 OK\r\n"), 0u) << head;
  EXPECT_NE(head.find("Content-Length: 11\r\n\r\nHTTP/1.1 200 OK\r\n"), std::string::npos) << head;
  EXPECT_NE(head.find("{\"body\":\"hi\"}"), std::string::npos) << head;
  // The server's own answers too: a HEAD whose body would be too large gets a bodiless 413.
  ServerLimits small;
  small.max_body_bytes = 10;
  Server limited(small, [](Request&&, Responder respond) { respond(Response::Empty(204)); });
  ASSERT_TRUE(limited.Listen("127.0.0.1:0").ok());
  limited.Start(1);
  // Read until the server hangs up, which it does after its 413.
  const std::string refused = Exchange(
      limited.port(), "HEAD /x HTTP/1.1\r\nHost: x\r\nContent-Length: 99\r\n\r\n", "<never>");
  EXPECT_EQ(refused.find("HTTP/1.1 413"), 0u) << refused;
  EXPECT_NE(refused.find("\r\n\r\n<closed>"), std::string::npos) << "no body: " << refused;
  limited.Stop();
  server.Stop();
}

// The answers the server writes itself carry the headers the route asks for (ingest's CORS), so
// that a browser can read them: 413 by Content-Length and by a chunked body, 431, 400 for a
// malformed request, and 408 for a header or a body that stalls. Other routes get none.
TEST(ServerOwnAnswersTest, CarryTheRouteHeadersWhateverProducedThem) {
  ServerLimits limits;
  limits.max_body_bytes = 100;
  limits.max_header_bytes = 1024;
  limits.header_timeout = std::chrono::milliseconds(300);
  limits.body_timeout = std::chrono::milliseconds(300);
  Server server(
      limits, [](Request&&, Responder respond) { respond(Response::Empty(204)); },
      [](std::string_view path, Response& response) {
        if (path == "/v1/events") response.With("access-control-allow-origin", "*");
      });
  ASSERT_TRUE(server.Listen("127.0.0.1:0").ok());
  server.Start(2);
  const auto answer = [&](const std::string& bytes) { return Exchange(server.port(), bytes); };
  struct Case {
    std::string name, request, status;
  };
  const std::vector<Case> cases = {
      {"413 by content-length",
       "POST /v1/events?key=k HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n\r\n",
       "HTTP/1.1 413 Payload Too Large\r\n"},
      {"413 by a chunked body",
       "POST /v1/events HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
       "65\r\n" +
           std::string(101, 'x') + "\r\n0\r\n\r\n",
       "HTTP/1.1 413 Payload Too Large\r\n"},
      {"431", "POST /v1/events HTTP/1.1\r\nX-Big: " + std::string(2000, 'a') + "\r\n\r\n",
       "HTTP/1.1 431 Request Header Fields Too Large\r\n"},
      {"400", "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n",
       "HTTP/1.1 400 Bad Request\r\n"},
      {"408 in the header", "POST /v1/events?key=k HTTP/1.1\r\nHost: x\r\n",
       "HTTP/1.1 408 Request Timeout\r\n"},
      {"408 in the body", "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc",
       "HTTP/1.1 408 Request Timeout\r\n"},
  };
  for (const Case& c : cases) {
    const std::string got = answer(c.request);
    EXPECT_EQ(got.rfind(c.status, 0), 0u) << c.name << ": " << got;
    EXPECT_NE(got.find("access-control-allow-origin: *\r\n"), std::string::npos)
        << c.name << ": " << got;
    EXPECT_NE(got.find("Connection: close\r\n"), std::string::npos) << c.name << ": " << got;
  }
  const std::string other =
      answer("POST /v1/sites HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n\r\n");
  EXPECT_EQ(other.rfind("HTTP/1.1 413 ", 0), 0u) << other;
  EXPECT_EQ(other.find("access-control"), std::string::npos) << other;
  // A connection that never sent a byte is closed at the timeout without a word.
  EXPECT_EQ(answer(""), "<closed>");
  server.Stop();
}

// Bodies being read count against max_body_bytes_reading over every connection: while one
// client holds a body open, a request whose declared body would pass the limit is told 503 with
// Retry-After at its header, before its body is read; one that fits, and one with no body, are
// served; once the first body is in, the refused one is taken.
TEST(ServerBodyBudgetTest, ABodyPastWhatIsBeingReadIs503UntilTheOthersAreIn) {
  ServerLimits limits;
  limits.max_body_bytes = 1000;
  limits.max_body_bytes_reading = 1500;
  Server server(limits, [](Request&& r, Responder respond) {
    respond(Response::Json(200, "{\"len\":" + std::to_string(r.body.size()) + "}"));
  });
  ASSERT_TRUE(server.Listen("127.0.0.1:0").ok());
  server.Start(2);
  const auto post = [](size_t length) {
    return "POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: " + std::to_string(length) + "\r\n\r\n" +
           std::string(length, 'b');
  };
  LoopbackSocket holding(server.port());
  holding.Send("POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n" +
               std::string(10, 'a'));
  holding.WaitAcknowledged();
  // The held header is read on one of the server's threads, soon: until then 600 bytes fit.
  std::string refused;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (refused.rfind("HTTP/1.1 503 ", 0) != 0 && std::chrono::steady_clock::now() < deadline) {
    refused = Exchange(server.port(), post(600), "}");
  }
  EXPECT_EQ(refused.rfind("HTTP/1.1 503 Service Unavailable\r\n", 0), 0u) << refused;
  EXPECT_NE(refused.find("retry-after: 1\r\n"), std::string::npos) << refused;
  EXPECT_NE(refused.find("\"code\":\"busy\""), std::string::npos) << refused;
  EXPECT_NE(refused.find("Connection: close\r\n"), std::string::npos) << refused;
  // A chunked body counts as max_body_bytes.
  const std::string chunked = Exchange(
      server.port(),
      "POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nb\r\n0\r\n\r\n", "}");
  EXPECT_EQ(chunked.rfind("HTTP/1.1 503 ", 0), 0u) << chunked;
  // Up to the limit, and a request without a body, are served meanwhile.
  const std::string fits = Exchange(server.port(), post(500), "}");
  EXPECT_EQ(fits.rfind("HTTP/1.1 200 ", 0), 0u) << fits;
  EXPECT_NE(fits.find("{\"len\":500}"), std::string::npos) << fits;
  const std::string bodiless = Exchange(server.port(), "GET /x HTTP/1.1\r\nHost: x\r\n\r\n", "}");
  EXPECT_EQ(bodiless.rfind("HTTP/1.1 200 ", 0), 0u) << bodiless;
  // The held body arrives: it is answered, and what was refused is taken now.
  holding.Send(std::string(990, 'a'));
  const std::string held = holding.Receive("}");
  EXPECT_NE(held.find("{\"len\":1000}"), std::string::npos) << held;
  const std::string again = Exchange(server.port(), post(600), "}");
  EXPECT_NE(again.find("{\"len\":600}"), std::string::npos) << again;
  server.Stop();
}

TEST(ServerHeadCheckTest, AnswersAtTheHeaderWithoutWaitingForTheBody) {
  std::atomic<int> handled{0};
  Server server(
      ServerLimits{},
      [&handled](Request&& r, Responder respond) {
        ++handled;
        respond(Response::Json(200, "{\"token\":\"" + std::string(r.Header("x-token")) +
                                        "\",\"len\":" + std::to_string(r.body.size()) + "}"));
      },
      nullptr,
      [](const Request& head) -> std::optional<Response> {
        EXPECT_TRUE(head.body.empty());
        if (!head.Header("x-token").empty()) return std::nullopt;
        return Response::Error(401, "no_token", "send x-token");
      });
  ASSERT_TRUE(server.Listen("127.0.0.1:0").ok());
  server.Start(1);
  // 100,000 bytes declared and none sent: without the check the server would wait for them.
  LoopbackSocket refused(server.port());
  refused.Send("POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n");
  const std::string answer = refused.Receive();
  EXPECT_EQ(answer.rfind("HTTP/1.1 401 Unauthorized\r\n", 0), 0u) << answer;
  EXPECT_NE(answer.find("Connection: close\r\n"), std::string::npos) << answer;
  EXPECT_NE(answer.find("send x-token"), std::string::npos) << answer;
  EXPECT_TRUE(answer.ends_with("<closed>")) << answer;
  EXPECT_EQ(handled.load(), 0);
  // A request that passes reaches the handler whole, its headers as the check saw them, and
  // its connection stays open for the next.
  LoopbackSocket passed(server.port());
  passed.Send("POST /x HTTP/1.1\r\nHost: x\r\nX-Token: t1\r\nContent-Length: 3\r\n\r\nabc");
  EXPECT_NE(passed.Receive("}").find(R"({"token":"t1","len":3})"), std::string::npos);
  passed.Send("POST /x HTTP/1.1\r\nHost: x\r\nX-Token: t2\r\nContent-Length: 2\r\n\r\nab");
  EXPECT_NE(passed.Receive("}").find(R"({"token":"t2","len":2})"), std::string::npos);
  EXPECT_EQ(handled.load(), 2);
  server.Stop();
}

// A handler that answers /now at once and holds the responders of /hold until Release().
class HoldingHandler {
 public:
  void operator()(Request&& r, Responder respond) {
    if (r.path != "/hold") return respond(Response::Json(200, R"({"now":true})"));
    std::lock_guard lock(mu_);
    held_.push_back(std::move(respond));
    cv_.notify_all();
  }
  void WaitHeld(size_t n) {
    std::unique_lock lock(mu_);
    ASSERT_TRUE(cv_.wait_for(lock, std::chrono::seconds(5), [&] { return held_.size() >= n; }));
  }
  void Release(const std::string& body) {
    std::vector<Responder> held;
    {
      std::lock_guard lock(mu_);
      held.swap(held_);
    }
    for (auto& respond : held) respond(Response::Json(200, body));
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Responder> held_;
};

// The gate: Drain() closes the idle keep-alive connection at once, lets a request that had begun
// to arrive and one being handled finish with "Connection: close", refuses new connections, and
// returns only once the last answer is out.
TEST(ServerDrainTest, ClosesIdleConnectionsAndFinishesTheRequestsInFlight) {
  HoldingHandler handler;
  Server server(ServerLimits{}, std::ref(handler));
  ASSERT_TRUE(server.Listen("127.0.0.1:0").ok());
  server.Start(2);
  const uint16_t port = server.port();

  LoopbackSocket idle(port);
  idle.Send("GET /now HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_NE(idle.Receive(R"({"now":true})").find("200 OK"), std::string::npos);
  LoopbackSocket busy(port);
  busy.Send("POST /hold HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx");
  handler.WaitHeld(1);
  LoopbackSocket partial(port);
  // Only the request line: the parser takes it whole from the buffer, which is then empty.
  partial.Send("POST /now HTTP/1.1\r\n");
  partial.WaitAcknowledged();  // else the gate could close before the request began to arrive

  std::atomic<int> drained{-1};
  std::thread drainer([&] {
    drained = server.Drain(std::chrono::steady_clock::now() + std::chrono::seconds(10)) ? 1 : 0;
  });
  EXPECT_EQ(idle.Receive(), "<closed>") << "the idle connection was not closed";
  idle.Close();
  // The rest of the request that had begun arrives after the gate closed, and is answered.
  partial.Send("Host: x\r\nContent-Length: 2\r\n\r\nhi");
  const std::string partial_answer = partial.Receive();
  EXPECT_EQ(partial_answer.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << partial_answer;
  EXPECT_NE(partial_answer.find("Connection: close\r\n"), std::string::npos) << partial_answer;
  EXPECT_NE(partial_answer.find(R"({"now":true}<closed>)"), std::string::npos) << partial_answer;
  partial.Close();

  EXPECT_EQ(drained.load(), -1) << "Drain() returned with a request in flight";
  handler.Release(R"({"held":true})");
  const std::string busy_answer = busy.Receive();
  EXPECT_EQ(busy_answer.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << busy_answer;
  EXPECT_NE(busy_answer.find("Connection: close\r\n"), std::string::npos) << busy_answer;
  EXPECT_NE(busy_answer.find(R"({"held":true}<closed>)"), std::string::npos) << busy_answer;
  busy.Close();  // the server lingers until the client has closed too
  drainer.join();
  EXPECT_EQ(drained.load(), 1);
  EXPECT_FALSE(LoopbackSocket(port).connected()) << "a new connection was accepted after Drain()";
  server.Stop();
}

TEST(ServerDrainTest, GivesUpAtTheDeadlineWhenAnAnswerNeverComes) {
  HoldingHandler handler;
  Server server(ServerLimits{}, std::ref(handler));
  ASSERT_TRUE(server.Listen("127.0.0.1:0").ok());
  server.Start(1);
  LoopbackSocket busy(server.port());
  busy.Send("POST /hold HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx");
  handler.WaitHeld(1);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(server.Drain(start + std::chrono::milliseconds(300)));
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(300));
  server.Stop();
  handler.Release("{}");  // after Stop(): the answer goes nowhere, and nothing breaks
  busy.Close();
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
