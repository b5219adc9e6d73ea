#include "receive/receiver.h"

#include <curl/curl.h>
#include <gtest/gtest.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <latch>
#include <regex>
#include <sstream>
#include <thread>

#include "http/testing/loopback_client.h"
#include "model/signature.h"
#include "store/store.h"
#include "util/testing/temp_dir.h"

namespace pushhook::receive {
namespace {

size_t Collect(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

struct Reply {
  long status = 0;
  std::string body;
  std::string headers;  // as received, lower-cased names and all
};

size_t Count(const std::string& text, const std::string& part) {
  size_t n = 0;
  for (size_t at = text.find(part); at != std::string::npos; at = text.find(part, at + 1)) ++n;
  return n;
}

int64_t NowSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// One request over loopback with libcurl; the handle is reused so keep-alive is exercised.
Reply Send(CURL* curl, const std::string& method, const std::string& url, const std::string& body,
           const std::vector<std::string>& headers) {
  Reply reply;
  curl_slist* list = nullptr;
  for (const auto& header : headers) list = curl_slist_append(list, header.c_str());
  list = curl_slist_append(list, "Expect:");
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_NOBODY, method == "HEAD" ? 1L : 0L);
  if (method == "POST") {
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.c_str());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
  } else if (method != "HEAD") {
    curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
  }
  curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method.c_str());
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, Collect);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &reply.headers);
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, Collect);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &reply.body);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT, 10L);
  EXPECT_EQ(curl_easy_perform(curl), CURLE_OK);
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &reply.status);
  curl_slist_free_all(list);
  return reply;
}

// The Standard Webhooks headers for `body`, signed with every one of `secrets`.
std::vector<std::string> SignedHeaders(const std::vector<std::string>& secrets,
                                       const std::string& id, int64_t timestamp,
                                       const std::string& body) {
  std::vector<std::string> keys;
  for (const auto& secret : secrets) keys.push_back(*model::DecodeSecret(secret));
  return {"content-type: application/json", "webhook-id: " + id,
          "webhook-timestamp: " + std::to_string(timestamp),
          "webhook-signature: " + model::SignatureHeader(keys, id, timestamp, body)};
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream content;
  content << in.rdbuf();
  return content.str();
}

// (webhook_id, idx, payload) rows of a SQLite output, in key order.
std::vector<std::tuple<std::string, int64_t, std::string>> ReadRows(const std::string& path) {
  std::vector<std::tuple<std::string, int64_t, std::string>> rows;
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db,
                               "SELECT webhook_id, idx, payload FROM received "
                               "ORDER BY webhook_id, idx",
                               -1, &stmt, nullptr),
            SQLITE_OK);
  while (sqlite3_step(stmt) == SQLITE_ROW) {
    rows.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0)),
                      sqlite3_column_int64(stmt, 1),
                      reinterpret_cast<const char*>(sqlite3_column_text(stmt, 2)));
  }
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  return rows;
}

constexpr char kPayload[] =
    R"({"action":"Click","cookie_id":"7e32b7a1-acfc-45db-83fb-766d2a8a2bce","cid":"1123123",)"
    R"("notification_title":"My Campaign Name","reference_id":"123422",)"
    R"("utm_campaign":"recover_carts","utm_content":"Article","utm_medium":"push_notifications",)"
    R"("utm_source":"izooto","utm_term":"notification3","clicked_button":2})";

class ReceiverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    secret_ = model::NewSecret();
    curl_ = curl_easy_init();
  }

  void TearDown() override {
    curl_easy_cleanup(curl_);
    if (receiver_) receiver_->Stop();
  }

  ReceiverOptions Options(const std::string& out_name = "") {
    ReceiverOptions options;
    options.listen = "127.0.0.1:0";
    options.secrets = {secret_};
    if (!out_name.empty()) options.out_path = dir_.File(out_name);
    return options;
  }

  void StartReceiver(ReceiverOptions options) {
    receiver_ = std::make_unique<Receiver>(std::move(options));
    const model::Status status = receiver_->Start();
    ASSERT_TRUE(status.ok()) << status.message();
    base_url_ = "http://127.0.0.1:" + std::to_string(receiver_->port());
  }

  Reply PostSigned(const std::string& id, const std::string& body, const std::string& path = "/") {
    return Send(curl_, "POST", base_url_ + path, body,
                SignedHeaders({secret_}, id, NowSeconds(), body));
  }

  util::testing::TempDir dir_{"pushhook-receive-test"};
  std::string secret_;
  std::string base_url_;
  CURL* curl_ = nullptr;
  std::unique_ptr<Receiver> receiver_;
};

TEST_F(ReceiverTest, ValidRequestIs204AndItsBytesAreOneNdjsonLine) {
  StartReceiver(Options("events.ndjson"));
  const Reply reply = PostSigned("msg_1", kPayload);
  EXPECT_EQ(reply.status, 204);
  EXPECT_EQ(reply.body, "");
  // The answer is sent after the write, so the line is there already.
  EXPECT_EQ(ReadFile(dir_.File("events.ndjson")), std::string(kPayload) + "\n");
  EXPECT_EQ(receiver_->counts(), (ReceiverCounts{1, 1, 0, 0}));
}

TEST_F(ReceiverTest, RespondDelayHoldsEachAnswerThatLong) {
  ReceiverOptions options = Options("events.ndjson");
  options.respond_delay = std::chrono::milliseconds(200);
  StartReceiver(options);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(PostSigned("msg_slow", kPayload).status, 204);
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(195));
  EXPECT_EQ(receiver_->counts(), (ReceiverCounts{1, 1, 0, 0}));
}

TEST_F(ReceiverTest, AcceptsAnyPath) {
  StartReceiver(Options("events.ndjson"));
  EXPECT_EQ(PostSigned("msg_a", R"({"a":1})", "/hooks/pushhook?x=1").status, 204);
  EXPECT_EQ(PostSigned("msg_b", R"({"b":2})", "/").status, 204);
  EXPECT_EQ(ReadFile(dir_.File("events.ndjson")), "{\"a\":1}\n{\"b\":2}\n");
}

TEST_F(ReceiverTest, BadSignatureIs401WithTheErrorBody) {
  StartReceiver(Options("events.ndjson"));
  // Signed over a different body.
  const auto headers = SignedHeaders({secret_}, "msg_1", NowSeconds(), R"({"other":true})");
  const Reply reply = Send(curl_, "POST", base_url_ + "/", kPayload, headers);
  EXPECT_EQ(reply.status, 401);
  EXPECT_EQ(reply.body,
            R"({"error":{"code":"invalid_signature","message":"no signature matches"}})");
  EXPECT_EQ(ReadFile(dir_.File("events.ndjson")), "");
  EXPECT_EQ(receiver_->counts(), (ReceiverCounts{1, 0, 0, 1}));
}

TEST_F(ReceiverTest, SignatureWithAnotherSecretIs401) {
  StartReceiver(Options());
  const int64_t now = NowSeconds();
  const Reply reply = Send(curl_, "POST", base_url_ + "/", kPayload,
                           SignedHeaders({model::NewSecret()}, "msg_1", now, kPayload));
  EXPECT_EQ(reply.status, 401);
  EXPECT_EQ(reply.body,
            R"({"error":{"code":"invalid_signature","message":"no signature matches"}})");
}

TEST_F(ReceiverTest, EachMissingHeaderIs401NamingIt) {
  StartReceiver(Options());
  const std::vector<std::string> all = SignedHeaders({secret_}, "msg_1", NowSeconds(), kPayload);
  const std::vector<std::pair<size_t, std::string>> cases = {
      {1, "missing webhook-id header"},
      {2, "missing webhook-timestamp header"},
      {3, "missing webhook-signature header"}};
  for (const auto& [dropped, message] : cases) {
    std::vector<std::string> headers = all;
    headers.erase(headers.begin() + static_cast<std::ptrdiff_t>(dropped));
    const Reply reply = Send(curl_, "POST", base_url_ + "/", kPayload, headers);
    EXPECT_EQ(reply.status, 401) << message;
    EXPECT_EQ(reply.body,
              R"({"error":{"code":"invalid_signature","message":")" + message + R"("}})");
  }
  EXPECT_EQ(receiver_->counts(), (ReceiverCounts{3, 0, 0, 3}));
}

TEST_F(ReceiverTest, TimestampOutsideToleranceIs401EitherWay) {
  StartReceiver(Options("events.ndjson"));
  for (const int64_t timestamp : {NowSeconds() - 600, NowSeconds() + 600}) {
    const Reply reply = Send(curl_, "POST", base_url_ + "/", kPayload,
                             SignedHeaders({secret_}, "msg_1", timestamp, kPayload));
    EXPECT_EQ(reply.status, 401);
    EXPECT_EQ(reply.body,
              R"({"error":{"code":"invalid_signature","message":"timestamp outside tolerance"}})");
  }
  // Within tolerance the same id is still new: rejected requests mark nothing as seen.
  EXPECT_EQ(PostSigned("msg_1", kPayload).status, 204);
  EXPECT_EQ(ReadFile(dir_.File("events.ndjson")), std::string(kPayload) + "\n");
}

TEST_F(ReceiverTest, MalformedTimestampIs401) {
  StartReceiver(Options());
  std::vector<std::string> headers = SignedHeaders({secret_}, "msg_1", NowSeconds(), kPayload);
  headers[2] = "webhook-timestamp: 12e9";
  const Reply reply = Send(curl_, "POST", base_url_ + "/", kPayload, headers);
  EXPECT_EQ(reply.status, 401);
  EXPECT_EQ(
      reply.body,
      R"({"error":{"code":"invalid_signature","message":"invalid webhook-timestamp header"}})");
}

TEST_F(ReceiverTest, HeadersThatFailAreRefusedBeforeTheBodyIsRead) {
  StartReceiver(Options("events.ndjson"));
  const std::string now = std::to_string(NowSeconds());
  const std::string stale = std::to_string(NowSeconds() - 600);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"webhook-id: msg_1\r\nwebhook-timestamp: " + now + "\r\n",
       "missing webhook-signature header"},
      {"webhook-id: msg_1\r\nwebhook-timestamp: " + stale + "\r\nwebhook-signature: v1,x\r\n",
       "timestamp outside tolerance"}};
  for (const auto& [headers, message] : cases) {
    // A megabyte declared and none of it sent: the answer cannot have waited for it.
    http::testing::LoopbackSocket socket(receiver_->port());
    socket.Send("POST /hooks HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n" + headers +
                "\r\n");
    const std::string answer = socket.Receive();
    EXPECT_EQ(answer.rfind("HTTP/1.1 401 ", 0), 0u) << answer;
    EXPECT_NE(answer.find(R"({"error":{"code":"invalid_signature","message":")" + message),
              std::string::npos)
        << answer;
    EXPECT_TRUE(answer.ends_with("<closed>")) << answer;
  }
  EXPECT_EQ(receiver_->counts(), (ReceiverCounts{2, 0, 0, 2}));
  // Signed ones are read whole and stored, as before.
  EXPECT_EQ(PostSigned("msg_1", kPayload).status, 204);
  EXPECT_EQ(ReadFile(dir_.File("events.ndjson")), std::string(kPayload) + "\n");
}

TEST_F(ReceiverTest, DuplicateIdIs204AndStoredOnce) {
  StartReceiver(Options("events.ndjson"));
  EXPECT_EQ(PostSigned("msg_dup", kPayload).status, 204);
  EXPECT_EQ(PostSigned("msg_dup", kPayload).status, 204);
  EXPECT_EQ(ReadFile(dir_.File("events.ndjson")), std::string(kPayload) + "\n");
  EXPECT_EQ(receiver_->counts(), (ReceiverCounts{2, 1, 1, 0}));
}

TEST_F(ReceiverTest, ConcurrentCopiesOfOneIdAreStoredOnce) {
  StartReceiver(Options("events.ndjson"));
  constexpr int kCopies = 8;
  std::vector<CURL*> handles;
  for (int i = 0; i < kCopies; ++i) handles.push_back(curl_easy_init());
  std::vector<long> statuses(kCopies);
  std::latch go(kCopies);
  std::vector<std::thread> senders;
  const auto headers = SignedHeaders({secret_}, "msg_same", NowSeconds(), kPayload);
  for (int i = 0; i < kCopies; ++i) {
    senders.emplace_back([&, i] {
      go.arrive_and_wait();
      statuses[static_cast<size_t>(i)] =
          Send(handles[static_cast<size_t>(i)], "POST", base_url_ + "/", kPayload, headers).status;
    });
  }
  for (auto& t : senders) t.join();
  for (CURL* handle : handles) curl_easy_cleanup(handle);
  for (long status : statuses) EXPECT_EQ(status, 204);
  EXPECT_EQ(ReadFile(dir_.File("events.ndjson")), std::string(kPayload) + "\n");
  EXPECT_EQ(receiver_->counts(), (ReceiverCounts{kCopies, 1, kCopies - 1, 0}));
}

TEST_F(ReceiverTest, BatchStoresEachElementAsItWasSent) {
  StartReceiver(Options("events.ndjson"));
  // Escapes, decimals and spacing are kept byte for byte; a string holding , ] } and an escaped
  // quote does not end its element; an element that spans lines loses its line breaks and the
  // indentation after them, nothing else.
  const std::string batch =
      "[ {\"t\":\"\\u00e9\\/\\u2028 ok\",\"n\":1.50} ,{\"s\":\"a,]}\\\" b\", \"o\":{\"x\":[1,{}]}},"
      "\n{\n  \"m\": 2\n}\n]\n";
  EXPECT_EQ(PostSigned("msg_batch", batch).status, 204);
  EXPECT_EQ(ReadFile(dir_.File("events.ndjson")),
            "{\"t\":\"\\u00e9\\/\\u2028 ok\",\"n\":1.50}\n"
            "{\"s\":\"a,]}\\\" b\", \"o\":{\"x\":[1,{}]}}\n"
            "{\"m\": 2}\n");
  EXPECT_EQ(receiver_->counts(), (ReceiverCounts{1, 3, 0, 0}));
}

// serve's largest batch: store::kMaxBatchEvents of the longest payloads.
static_assert(kMaxBatchBodyBytes == store::kMaxBatchEvents * (model::kMaxPayloadBytes + 1) + 1);

TEST_F(ReceiverTest, ABodyOverTheLimitIs413AndCountedAsRejected) {
  ReceiverOptions options = Options("events.ndjson");
  options.max_body_bytes = 64;
  StartReceiver(options);
  const Reply reply = PostSigned("msg_big", kPayload);
  EXPECT_EQ(reply.status, 413);
  EXPECT_NE(reply.body.find("request body exceeds 64 bytes"), std::string::npos) << reply.body;
  EXPECT_EQ(receiver_->counts(), (ReceiverCounts{1, 0, 0, 1}));
  EXPECT_EQ(ReadFile(dir_.File("events.ndjson")), "");
}

TEST_F(ReceiverTest, MultiLineObjectLosesOnlyItsLineBreaks) {
  StartReceiver(Options("events.ndjson"));
  EXPECT_EQ(PostSigned("msg_1", "{\r\n  \"a\": \"b\",\n\t\"n\": 1.50\n}\n").status, 204);
  EXPECT_EQ(PostSigned("msg_2", "  {\"c\": 1}  ").status, 204);
  EXPECT_EQ(ReadFile(dir_.File("events.ndjson")), "{\"a\": \"b\",\"n\": 1.50}\n{\"c\": 1}\n");
}

TEST_F(ReceiverTest, SvixHeadersVerifyAsTheStandardOnesDo) {
  StartReceiver(Options("events.ndjson"));
  std::vector<std::string> headers = SignedHeaders({secret_}, "msg_svix", NowSeconds(), kPayload);
  for (std::string& h : headers) {
    if (h.starts_with("webhook-")) h.replace(0, 8, "svix-");
  }
  EXPECT_EQ(Send(curl_, "POST", base_url_ + "/", kPayload, headers).status, 204);
  headers.back() = "svix-signature: v1,AAAA";
  const Reply forged = Send(curl_, "POST", base_url_ + "/", kPayload, headers);
  EXPECT_EQ(forged.status, 401);
  EXPECT_EQ(ReadFile(dir_.File("events.ndjson")), std::string(kPayload) + "\n");
}

TEST_F(ReceiverTest, RotatedSecretVerifiesWithTheOneTheReceiverKnows) {
  const std::string old_secret = model::NewSecret();
  StartReceiver(Options("events.ndjson"));  // knows secret_ only, the second in the header
  const int64_t now = NowSeconds();
  const Reply reply = Send(curl_, "POST", base_url_ + "/", kPayload,
                           SignedHeaders({old_secret, secret_}, "msg_rot", now, kPayload));
  EXPECT_EQ(reply.status, 204);
  EXPECT_EQ(ReadFile(dir_.File("events.ndjson")), std::string(kPayload) + "\n");
}

TEST_F(ReceiverTest, AnyOfSeveralSecretsVerifies) {
  const std::string other = model::NewSecret();
  ReceiverOptions options = Options();
  options.secrets = {other, secret_};
  StartReceiver(options);
  EXPECT_EQ(PostSigned("msg_1", kPayload).status, 204);
  EXPECT_EQ(Send(curl_, "POST", base_url_ + "/", kPayload,
                 SignedHeaders({other}, "msg_2", NowSeconds(), kPayload))
                .status,
            204);
  EXPECT_EQ(receiver_->counts(), (ReceiverCounts{2, 2, 0, 0}));
}

TEST_F(ReceiverTest, StandardWebhooksReferenceVectorVerifies) {
  ReceiverOptions options = Options("events.ndjson");
  options.secrets = {"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"};
  // The vector's timestamp is from 2021: widen the tolerance to reach it.
  options.tolerance = std::chrono::seconds(NowSeconds() - 1614265330 + 3600);
  StartReceiver(options);
  const std::string body = R"({"test": 2432232314})";
  const Reply reply =
      Send(curl_, "POST", base_url_ + "/", body,
           {"webhook-id: msg_p5jXN8AQM9LWM0D4loKWxJek", "webhook-timestamp: 1614265330",
            "webhook-signature: v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="});
  EXPECT_EQ(reply.status, 204);
  EXPECT_EQ(ReadFile(dir_.File("events.ndjson")), body + "\n");
}

TEST_F(ReceiverTest, VerifiedBodyThatIsNotJsonIs400) {
  StartReceiver(Options("events.ndjson"));
  const Reply not_json = PostSigned("msg_1", "action=Click");
  EXPECT_EQ(not_json.status, 400);
  EXPECT_EQ(not_json.body,
            R"({"error":{"code":"invalid_json","message":"body is not valid JSON at byte 0: )"
            R"(syntax error"}})");
  const Reply scalar = PostSigned("msg_2", "42");
  EXPECT_EQ(scalar.status, 400);
  EXPECT_EQ(scalar.body,
            R"({"error":{"code":"invalid_payload","message":"body must be a JSON object or an )"
            R"(array of objects, not a number"}})");
  const Reply bad_element = PostSigned("msg_3", R"([{"a":1},"x"])");
  EXPECT_EQ(bad_element.status, 400);
  EXPECT_EQ(bad_element.body,
            R"({"error":{"code":"invalid_payload","message":"batch element 1 is a string, )"
            R"(not a JSON object"}})");
  EXPECT_EQ(ReadFile(dir_.File("events.ndjson")), "");
  EXPECT_EQ(receiver_->counts(), (ReceiverCounts{3, 0, 0, 3}));
}

TEST_F(ReceiverTest, HealthzIs200AndOtherMethodsAre405) {
  StartReceiver(Options());
  const Reply health = Send(curl_, "GET", base_url_ + "/healthz", "", {});
  EXPECT_EQ(health.status, 200);
  EXPECT_EQ(health.body, R"({"status":"ok"})");
  // HEAD for uptime checks and curl -I: GET's answer without its body.
  const Reply head = Send(curl_, "HEAD", base_url_ + "/healthz", "", {});
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.body, "");
  EXPECT_EQ(Send(curl_, "GET", base_url_ + "/", "", {}).status, 405);
  const Reply removed = Send(curl_, "DELETE", base_url_ + "/healthz", "", {});
  EXPECT_EQ(removed.status, 405);
  EXPECT_EQ(Count(removed.headers, "allow: GET, HEAD, POST\r\n"), 1u) << removed.headers;
  EXPECT_EQ(receiver_->counts(), (ReceiverCounts{0, 0, 0, 0}));
}

TEST_F(ReceiverTest, WithoutOutputStillDeduplicatesAndCounts) {
  StartReceiver(Options());
  EXPECT_EQ(PostSigned("msg_1", "[{},{}]").status, 204);
  EXPECT_EQ(PostSigned("msg_1", "[{},{}]").status, 204);
  EXPECT_EQ(receiver_->counts(), (ReceiverCounts{2, 2, 1, 0}));
  EXPECT_TRUE(std::filesystem::is_empty(dir_.path()));
}

TEST_F(ReceiverTest, SqliteStoresEachPayloadAndDedupSurvivesRestart) {
  const std::string db = dir_.File("events.db");
  StartReceiver(Options("events.db"));
  EXPECT_EQ(PostSigned("msg_1", kPayload).status, 204);
  EXPECT_EQ(PostSigned("msg_2", R"([{"a":1},{"b":2}])").status, 204);
  receiver_->Stop();

  StartReceiver(Options("events.db"));
  EXPECT_EQ(PostSigned("msg_1", kPayload).status, 204);
  EXPECT_EQ(PostSigned("msg_2", R"([{"a":1},{"b":2}])").status, 204);
  EXPECT_EQ(PostSigned("msg_3", R"({"c":3})").status, 204);
  EXPECT_EQ(receiver_->counts(), (ReceiverCounts{3, 1, 2, 0}));
  receiver_->Stop();

  using Row = std::tuple<std::string, int64_t, std::string>;
  EXPECT_EQ(ReadRows(db), (std::vector<Row>{{"msg_1", 0, kPayload},
                                            {"msg_2", 0, R"({"a":1})"},
                                            {"msg_2", 1, R"({"b":2})"},
                                            {"msg_3", 0, R"({"c":3})"}}));
}

TEST_F(ReceiverTest, NdjsonAppendsAcrossRestartsAndItsDedupSurvivesThem) {
  StartReceiver(Options("events.ndjson"));
  EXPECT_EQ(PostSigned("msg_1", R"({"a":1})").status, 204);
  EXPECT_EQ(PostSigned("msg_2", R"([{"b":2},{"c":3}])").status, 204);
  receiver_->Stop();
  // A sender that resends after a crash of its own: each request is stored once, whatever
  // the receiver did in between.
  StartReceiver(Options("events.ndjson"));
  EXPECT_EQ(PostSigned("msg_1", R"({"a":1})").status, 204);
  EXPECT_EQ(PostSigned("msg_2", R"([{"b":2},{"c":3}])").status, 204);
  EXPECT_EQ(PostSigned("msg_3", R"({"d":4})").status, 204);
  EXPECT_EQ(receiver_->counts(), (ReceiverCounts{3, 1, 2, 0}));
  receiver_->Stop();
  EXPECT_EQ(ReadFile(dir_.File("events.ndjson")), "{\"a\":1}\n{\"b\":2}\n{\"c\":3}\n{\"d\":4}\n");
  // One id line per payload: a batch's count of lines is how many of its elements are stored.
  EXPECT_EQ(ReadFile(dir_.File("events.ndjson.ids")), "msg_1\nmsg_2\nmsg_2\nmsg_3\n");
}

// DESIGN section 1: a payload is known by webhook-id + index. A batch sent again under its id
// with more elements (a sender that re-forms it) stores only the elements past those stored,
// across a restart too; sent again with the same or fewer, nothing.
TEST_F(ReceiverTest, ABatchSentAgainWithMoreElementsStoresOnlyTheNewOnes) {
  for (const std::string out : {"grow.ndjson", "grow.db"}) {
    SCOPED_TRACE(out);
    StartReceiver(Options(out));
    EXPECT_EQ(PostSigned("bat_g", R"([{"g":0},{"g":1}])").status, 204);
    EXPECT_EQ(PostSigned("bat_g", R"([{"g":0},{"g":1},{"g":2}])").status, 204);
    EXPECT_EQ(PostSigned("bat_g", R"([{"g":0}])").status, 204);
    EXPECT_EQ(receiver_->counts(), (ReceiverCounts{3, 3, 1, 0}));
    receiver_->Stop();
    StartReceiver(Options(out));
    EXPECT_EQ(PostSigned("bat_g", R"([{"g":0},{"g":1},{"g":2}])").status, 204);
    EXPECT_EQ(PostSigned("bat_g", R"([{"g":0},{"g":1},{"g":2},{"g":3}])").status, 204);
    EXPECT_EQ(receiver_->counts(), (ReceiverCounts{2, 1, 1, 0}));
    receiver_->Stop();
  }
  EXPECT_EQ(ReadFile(dir_.File("grow.ndjson")), "{\"g\":0}\n{\"g\":1}\n{\"g\":2}\n{\"g\":3}\n");
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(dir_.File("grow.db").c_str(), &db), SQLITE_OK);
  std::string rows;
  sqlite3_exec(
      db, "SELECT idx, payload FROM received WHERE webhook_id = 'bat_g' ORDER BY idx",
      [](void* out, int, char** values, char**) {
        *static_cast<std::string*>(out) += std::string(values[0]) + "=" + values[1] + ";";
        return 0;
      },
      &rows, nullptr);
  sqlite3_close(db);
  EXPECT_EQ(rows, R"(0={"g":0};1={"g":1};2={"g":2};3={"g":3};)");
}

TEST_F(ReceiverTest, AnNdjsonIdCutShortByACrashIsNotTakenAsStored) {
  // The crash came between the payload and the end of its id's line: the resend is stored.
  {
    std::ofstream ids(dir_.File("events.ndjson.ids"));
    ids << "msg_1\nmsg_";
  }
  StartReceiver(Options("events.ndjson"));
  EXPECT_EQ(PostSigned("msg_1", R"({"a":1})").status, 204);
  EXPECT_EQ(PostSigned("msg_2", R"({"b":2})").status, 204);
  EXPECT_EQ(receiver_->counts(), (ReceiverCounts{2, 1, 1, 0}));
  receiver_->Stop();
  EXPECT_EQ(ReadFile(dir_.File("events.ndjson.ids")), "msg_1\nmsg_2\n") << "the cut line is gone";
}

TEST_F(ReceiverTest, AnNdjsonPayloadCutShortByACrashIsCutOff) {
  // The crash came in the middle of a payload's line: the next one must not be glued to it.
  {
    std::ofstream out(dir_.File("events.ndjson"));
    out << "{\"a\":1}\n{\"b\":";
  }
  StartReceiver(Options("events.ndjson"));
  EXPECT_EQ(PostSigned("msg_2", R"({"b":2})").status, 204);
  receiver_->Stop();
  EXPECT_EQ(ReadFile(dir_.File("events.ndjson")), "{\"a\":1}\n{\"b\":2}\n");
}

// /dev/full fails every write with ENOSPC: the disk-full path without a test seam.
TEST_F(ReceiverTest, FailedWriteIs503AndLeavesTheIdNew) {
  ReceiverOptions options = Options();
  options.out_path = "/dev/full";
  StartReceiver(options);
  for (int attempt = 0; attempt < 2; ++attempt) {
    const Reply reply = PostSigned("msg_1", kPayload);
    EXPECT_EQ(reply.status, 503) << "attempt " << attempt;
    EXPECT_NE(reply.body.find(R"("code":"unavailable")"), std::string::npos) << reply.body;
    EXPECT_NE(reply.body.find("No space left on device"), std::string::npos) << reply.body;
    EXPECT_EQ(Count(reply.headers, "retry-after:"), 1u) << reply.headers;
  }
  // Refused, so neither stored nor a duplicate: the sender's retry is treated as new every time.
  EXPECT_EQ(receiver_->counts(), (ReceiverCounts{2, 0, 0, 2}));
}

TEST_F(ReceiverTest, BadOptionsAreInvalidArgumentWithOneLine) {
  const auto start = [](ReceiverOptions options) { return Receiver(std::move(options)).Start(); };
  ReceiverOptions options = Options();
  options.secrets = {"whsec_not base64!"};
  model::Status s = start(options);
  EXPECT_EQ(s.code(), model::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(),
            "the secret is not a webhook secret: expected \"whsec_\" followed by base64");

  options.secrets = {secret_, "plain-password"};
  s = start(options);
  EXPECT_EQ(s.code(), model::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(),
            "secret #2 is not a webhook secret: expected \"whsec_\" followed by base64");

  options.secrets = {};
  s = start(options);
  EXPECT_EQ(s.code(), model::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "at least one webhook secret (whsec_...) is required");

  options = Options();
  options.listen = "9000";
  s = start(options);
  EXPECT_EQ(s.code(), model::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "listen address must be host:port, got '9000'");
}

// A path the operator gave wrong is bad usage (exit code 2), for both kinds of output.
TEST_F(ReceiverTest, AnOutputInAMissingFolderIsBadUsage) {
  for (const std::string name : {"missing-dir/events.db", "missing-dir/events.ndjson"}) {
    const ReceiverOptions options = Options(name);
    Receiver receiver(options);
    const model::Status s = receiver.Start();
    EXPECT_EQ(s.code(), model::StatusCode::kInvalidArgument) << name;
    EXPECT_EQ(s.message(), "cannot open " + options.out_path + ": No such file or directory");
  }
}

// Runs RunReceive on a thread with stderr sent into a pipe, so its log lines can be read.
class RunReceiveTest : public ReceiverTest {
 protected:
  void SetUp() override {
    ReceiverTest::SetUp();
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    read_fd_ = fds[0];
    saved_stderr_ = dup(STDERR_FILENO);
    dup2(fds[1], STDERR_FILENO);
    close(fds[1]);
  }
  void TearDown() override {
    dup2(saved_stderr_, STDERR_FILENO);
    close(saved_stderr_);
    close(read_fd_);
    ReceiverTest::TearDown();
  }

  // The next log line without its leading "ts" field, which is checked to be an RFC 3339 time
  // and taken out so that the rest compares exactly.
  std::string ReadLine() {
    std::string line;
    char c;
    while (read(read_fd_, &c, 1) == 1 && c != '\n') line.push_back(c);
    static const std::regex kTime(R"(^\{"ts":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z",)");
    std::smatch time;
    EXPECT_TRUE(std::regex_search(line, time, kTime)) << line;
    return time.empty() ? line : "{" + time.suffix().str();
  }

  int read_fd_ = -1;
  int saved_stderr_ = -1;
};

TEST_F(RunReceiveTest, LogsListeningCountsAndExitsZeroOnSigterm) {
  ReceiverOptions options = Options("events.ndjson");
  int code = -1;
  std::thread runner([&] { code = RunReceive(options); });
  const std::string listening = ReadLine();
  const size_t at = listening.find("\"port\":");
  ASSERT_NE(at, std::string::npos) << listening;
  const std::string port = listening.substr(at + 7, listening.size() - at - 8);
  EXPECT_EQ(listening, R"({"level":"info","msg":"listening","address":"127.0.0.1:)" + port +
                           R"(","port":)" + port + "}");
  base_url_ = "http://127.0.0.1:" + port;
  EXPECT_EQ(PostSigned("msg_1", kPayload).status, 204);
  EXPECT_EQ(ReadLine(), R"({"level":"info","msg":"counts","received":1,"stored":1,"duplicates":0,)"
                        R"("rejected":0})");
  pthread_kill(runner.native_handle(), SIGTERM);
  EXPECT_EQ(ReadLine(), R"({"level":"info","msg":"stopping","signal":"SIGTERM"})");
  EXPECT_EQ(ReadLine(), R"({"level":"info","msg":"stopped","received":1,"stored":1,"duplicates":0,)"
                        R"("rejected":0})");
  runner.join();
  EXPECT_EQ(code, 0);
  EXPECT_EQ(ReadFile(dir_.File("events.ndjson")), std::string(kPayload) + "\n");
}

TEST_F(RunReceiveTest, BadOptionsExitTwoAndListenFailureExitsOne) {
  ReceiverOptions options = Options();
  options.secrets = {"nope"};
  EXPECT_EQ(RunReceive(options), 2);
  EXPECT_EQ(ReadLine(), R"({"level":"error","msg":"the secret is not a webhook secret: )"
                        R"(expected \"whsec_\" followed by base64"})");

  StartReceiver(Options());
  options = Options();
  options.listen = "127.0.0.1:" + std::to_string(receiver_->port());
  EXPECT_EQ(RunReceive(options), 1);
  EXPECT_NE(ReadLine().find(R"("msg":"cannot listen on 127.0.0.1:)"), std::string::npos);
}

}  // namespace
}  // namespace pushhook::receive
