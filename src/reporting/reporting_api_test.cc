#include "reporting/reporting_api.h"

#include <gtest/gtest.h>

#include <future>

#include "model/digest.h"
#include "store/testing/test_store.h"
#include "util/testing/temp_dir.h"

namespace pushhook::reporting {
namespace {

TEST(CsvTest, QuotesOnlyWhatNeedsQuoting) {
  EXPECT_EQ(CsvRecord({"a", "b c", "1"}), "a,b c,1\r\n");
  EXPECT_EQ(CsvRecord({"x,y", "say \"hi\"", "two\nlines"}),
            "\"x,y\",\"say \"\"hi\"\"\",\"two\nlines\"\r\n");
  EXPECT_EQ(CsvRecord({""}), "\r\n");
}

TEST(CsvTest, TextThatAFormulaWouldReadGetsAnApostrophe) {
  for (const char* formula :
       {"=HYPERLINK(\"http://x\")", "+1", "-1+2", "@SUM(A1)", "\tx", "\rx",
        "\uFF1DHYPERLINK(\"http://x\")", "\uFF0B1", "\uFF0D1", "\uFF20SUM(A1)"}) {
    EXPECT_EQ(SpreadsheetText(formula), std::string("'") + formula);
  }
  for (const char* text : {"", "campaign 1", "1123123", "a=b", " =1", "\uFF21", "a\uFF1D1"}) {
    EXPECT_EQ(SpreadsheetText(text), text);
  }
}

TEST(AcceptTest, NoHeaderOrJsonAloneIsJson) {
  for (const char* accept : {"", "application/json", "*/*", "application/*", "text/html", ",,"}) {
    EXPECT_FALSE(WantsCsv(accept)) << accept;
  }
}

TEST(AcceptTest, CsvAloneOrAnyTextIsCsv) {
  for (const char* accept : {"text/csv", "text/*", "TEXT/CSV", " text/csv ; charset=utf-8 ",
                             "text/csv;q=0.001", "text/csv, */*;q=0.9", "text/*;q=1, */*;q=0.5",
                             "text/csv;q=1.000, application/json;q=0.999"}) {
    EXPECT_TRUE(WantsCsv(accept)) << accept;
  }
}

TEST(AcceptTest, CsvOnlyWhenItsQualityIsAboveJsons) {
  EXPECT_FALSE(WantsCsv("text/csv;q=0.1, application/json"));
  EXPECT_FALSE(WantsCsv("application/json, text/csv")) << "equal qualities keep JSON";
  EXPECT_FALSE(WantsCsv("text/csv, */*")) << "*/* covers JSON";
  EXPECT_FALSE(WantsCsv("text/csv;q=0.5, application/*;q=0.5"));
  EXPECT_TRUE(WantsCsv("text/csv;q=0.6, application/*;q=0.5"));
  EXPECT_TRUE(WantsCsv("application/json;q=0.2, text/csv;q=0.3"));
  EXPECT_FALSE(WantsCsv("application/json;q=0.3, text/csv;q=0.2"));
  // The most specific range decides: here JSON's own range wins over */*.
  EXPECT_TRUE(WantsCsv("*/*, application/json;q=0.5"));
  EXPECT_FALSE(WantsCsv("text/*;q=0.2, */*;q=0.9"));
  EXPECT_TRUE(WantsCsv("text/*;q=0.2, */*;q=0.1"));
}

TEST(AcceptTest, QualityZeroIsNotAcceptable) {
  for (const char* accept : {"text/csv;q=0", "text/csv; q=0.000", "text/csv;Q=0.0",
                             "text/csv;q=0, */*", "*/*;q=0.5, text/csv;q=0", "text/*;q=0"}) {
    EXPECT_FALSE(WantsCsv(accept)) << accept;
  }
  EXPECT_TRUE(WantsCsv("application/json;q=0, */*;q=0.1")) << "only CSV is acceptable";
}

TEST(AcceptTest, WhitespaceCaseAndParametersAreRead) {
  EXPECT_FALSE(WantsCsv("Text/CSV ; Q=0.1 ,\tApplication/JSON"));
  EXPECT_TRUE(WantsCsv("application/json ;\tq=0.1 , text/csv ; header=present ; q=0.2"));
  // A comma inside a quoted parameter value does not end the range.
  EXPECT_TRUE(WantsCsv("text/csv;x=\"a, application/json\";q=0.5, application/json;q=0.4"));
  // The weight ends the media type's parameters; what follows is an extension.
  EXPECT_TRUE(WantsCsv("text/csv;q=0.5;q=0, application/json;q=0.4"));
}

TEST(AcceptTest, AMalformedWeightLeavesItsRangeOut) {
  for (const char* weight : {"1.5", "2", "0.1234", "-0.5", ".5", "0,5", "x", ""}) {
    const std::string accept = std::string("text/csv;q=") + weight + ", application/json;q=0.1";
    EXPECT_FALSE(WantsCsv(accept)) << accept;
  }
  EXPECT_TRUE(WantsCsv("text/csv;q=1., application/json;q=0.1")) << "\"1.\" is a qvalue";
  EXPECT_FALSE(WantsCsv("*/csv")) << "not a media range";
}

TEST(CtrTest, IsZeroWithoutViews) {
  EXPECT_EQ(ClickThroughRate(0, 5), 0.0);
  EXPECT_DOUBLE_EQ(ClickThroughRate(10, 3), 0.3);
}

// The campaign export over a real store, with a cap of 2 campaigns: an export cut at the cap
// says so in a header; one that fits exactly, or a page asked for by size, does not.
class CampaignsCsvTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = store::testing::OpenTestStore(dir_);
    site_ = store_->CreateSite("s")->id;
    auth_ = std::make_unique<admin::Authenticator>(*store_, model::Sha256Hex("tok"));
  }
  void AddCampaigns(int n) {
    std::vector<model::Event> events(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) {
      events[static_cast<size_t>(i)].cookie_id = "c";
      events[static_cast<size_t>(i)].cid = "camp-" + std::to_string(added_++);
    }
    std::promise<bool> done;
    store_->AppendEvents(site_, events, 1'800'000'000'000, [&](auto r) { done.set_value(r.ok()); });
    ASSERT_TRUE(done.get_future().get());
  }
  http::Response Export(const std::string& query = "") {
    ReportingApi api(*store_, *auth_, 2);
    http::Router router;
    api.Register(router);
    http::Request request;
    request.method = "GET";
    request.path = "/v1/sites/" + site_ + "/campaigns";
    request.query = query;
    request.headers.emplace_back("authorization", "Bearer tok");
    request.headers.emplace_back("accept", "text/csv");
    std::promise<http::Response> answer;
    router.Handle(std::move(request), [&](http::Response r) { answer.set_value(std::move(r)); });
    return answer.get_future().get();
  }
  static std::string Header(const http::Response& r, std::string_view name) {
    for (const auto& [key, value] : r.headers) {
      if (key == name) return value;
    }
    return "";
  }
  static size_t Rows(const http::Response& r) {
    return static_cast<size_t>(std::count(r.body.begin(), r.body.end(), '\n')) - 1;  // header
  }

  util::testing::TempDir dir_{"pushhook-reporting"};
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<admin::Authenticator> auth_;
  std::string site_;
  int added_ = 0;
};

TEST_F(CampaignsCsvTest, AnExportCutAtTheCapSaysSo) {
  AddCampaigns(2);
  http::Response fits = Export();
  ASSERT_EQ(fits.status, 200) << fits.body;
  EXPECT_EQ(Rows(fits), 2u);
  EXPECT_EQ(Header(fits, "x-pushhook-truncated"), "");
  AddCampaigns(1);
  http::Response cut = Export();
  ASSERT_EQ(cut.status, 200) << cut.body;
  EXPECT_EQ(Rows(cut), 2u);
  EXPECT_EQ(Header(cut, "x-pushhook-truncated"), "true");
  // A page of a size the caller chose is what was asked for, not a cut export.
  http::Response page = Export("limit=1");
  EXPECT_EQ(Rows(page), 1u);
  EXPECT_EQ(Header(page, "x-pushhook-truncated"), "");
}

}  // namespace
}  // namespace pushhook::reporting
