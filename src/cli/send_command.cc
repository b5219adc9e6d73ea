#include "cli/send_command.h"

#include <curl/curl.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "cli/request_failure.h"
#include "model/payload.h"
#include "model/random.h"

namespace pushhook::cli {
namespace {

using Clock = std::chrono::steady_clock;

// The start of an answer, enough to say why a request was refused.
constexpr size_t kAnswerBytes = 512;

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// One connection's worth of state: an easy handle reused for keep-alive, the body in flight,
// and the start of its answer.
struct Slot {
  CURL* easy = nullptr;
  std::string body;
  std::string answer;
  uint64_t events = 0;
  bool busy = false;
};

size_t KeepAnswerStart(char* data, size_t size, size_t n, void* user) {
  std::string& answer = static_cast<Slot*>(user)->answer;
  answer.append(data, std::min(size * n, kAnswerBytes - std::min(answer.size(), kAnswerBytes)));
  return size * n;
}

}  // namespace

SendReport Send(const SendOptions& options) {
  SendReport report;
  const std::string run = model::RandomToken(8);
  const std::string url = options.server + "/v1/events";
  const std::string key_header = "x-pushhook-key: " + options.key;
  curl_slist* headers = curl_slist_append(nullptr, "content-type: application/json");
  headers = curl_slist_append(headers, key_header.c_str());
  headers = curl_slist_append(headers, "Expect:");
  CURLM* multi = curl_multi_init();
  std::vector<Slot> slots(static_cast<size_t>(std::max(1, options.connections)));
  for (Slot& slot : slots) {
    slot.easy = curl_easy_init();
    curl_easy_setopt(slot.easy, CURLOPT_URL, url.c_str());
    curl_easy_setopt(slot.easy, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(slot.easy, CURLOPT_WRITEFUNCTION, KeepAnswerStart);
    curl_easy_setopt(slot.easy, CURLOPT_WRITEDATA, &slot);
    curl_easy_setopt(slot.easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(slot.easy, CURLOPT_TIMEOUT_MS, 30'000L);
    curl_easy_setopt(slot.easy, CURLOPT_PRIVATE, &slot);
    if (!options.ca_file.empty())
      curl_easy_setopt(slot.easy, CURLOPT_CAINFO, options.ca_file.c_str());
  }

  uint64_t sent_events = 0;
  uint64_t next_id = 0;
  const auto start = Clock::now();
  const auto deadline = start + std::chrono::duration<double>(options.max_seconds);
  const double interval_s = options.rate > 0 ? 1.0 / options.rate : 0;
  uint64_t launched_requests = 0;
  int running = 0;
  for (;;) {
    const auto now = Clock::now();
    const bool out_of_time = now >= deadline;
    // Launch what is due, on free connections.
    for (Slot& slot : slots) {
      if (slot.busy || sent_events >= options.count || out_of_time) continue;
      if (interval_s > 0) {
        const auto due = start + std::chrono::duration<double>(
                                     interval_s * static_cast<double>(launched_requests));
        if (now < due) break;
      }
      const uint64_t n = std::min<uint64_t>(static_cast<uint64_t>(std::max(1, options.batch)),
                                            options.count - sent_events);
      slot.body = n > 1 ? "[" : "";
      const int64_t at = NowMs();
      for (uint64_t i = 0; i < n; ++i) {
        model::Event e;
        e.action = options.action == "View"      ? model::Action::kView
                   : options.action == "Dismiss" ? model::Action::kDismiss
                                                 : model::Action::kClick;
        e.cookie_id = "sub-" + std::to_string(next_id % 100'000);
        if (options.campaigns > 1) {
          const std::string number = std::to_string(next_id % options.campaigns);
          e.cid = options.cid + "-" + number;
          e.notification_title = "Campaign " + number;
        } else {
          e.cid = options.cid;
        }
        e.clicked_button = e.action == model::Action::kClick ? static_cast<int>(next_id % 3) : 0;
        e.utm_source = "pushhook-send";
        e.event_id = run + "-" + std::to_string(next_id++);
        e.occurred_at_ms = at;
        if (i > 0) slot.body.push_back(',');
        // The payload shape plus the two ingest-only fields.
        std::string event = model::Payload(e, model::PayloadFormat::kIzooto, "");
        event.pop_back();
        event += ",\"event_id\":\"" + e.event_id + "\",\"occurred_at\":" + std::to_string(at) + "}";
        slot.body += event;
      }
      if (n > 1) slot.body.push_back(']');
      slot.events = n;
      slot.answer.clear();
      slot.busy = true;
      sent_events += n;
      ++launched_requests;
      curl_easy_setopt(slot.easy, CURLOPT_POSTFIELDS, slot.body.c_str());
      curl_easy_setopt(slot.easy, CURLOPT_POSTFIELDSIZE, static_cast<long>(slot.body.size()));
      curl_multi_add_handle(multi, slot.easy);
    }
    curl_multi_perform(multi, &running);
    int queued = 0;
    while (CURLMsg* msg = curl_multi_info_read(multi, &queued)) {
      if (msg->msg != CURLMSG_DONE) continue;
      Slot* slot = nullptr;
      curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &slot);
      long status = 0;
      curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &status);
      ++report.requests;
      if (msg->data.result != CURLE_OK) {
        ++report.errors;
        report.refused += slot->events;
        if (report.first_refusal.empty()) {
          report.first_refusal = RequestFailure(msg->data.result);
        }
      } else if (status == 202) {
        report.accepted += slot->events;
      } else {
        report.refused += slot->events;
        if (report.first_refusal.empty()) {
          // On one line, whatever a proxy's page holds.
          std::string answer = slot->answer;
          std::replace_if(
              answer.begin(), answer.end(),
              [](char c) { return static_cast<unsigned char>(c) < 0x20; }, ' ');
          report.first_refusal = "HTTP " + std::to_string(status) + ": " + answer;
        }
      }
      curl_multi_remove_handle(multi, msg->easy_handle);
      slot->busy = false;
    }
    const bool idle = running == 0 && std::none_of(slots.begin(), slots.end(),
                                                   [](const Slot& s) { return s.busy; });
    if (idle && (sent_events >= options.count || out_of_time)) break;
    int wait_ms = 50;
    if (interval_s > 0 && sent_events < options.count) {
      const auto due = start + std::chrono::duration<double>(
                                   interval_s * static_cast<double>(launched_requests));
      wait_ms = static_cast<int>(std::clamp<int64_t>(
          std::chrono::duration_cast<std::chrono::milliseconds>(due - Clock::now()).count(), 0,
          50));
    } else if (sent_events < options.count) {
      wait_ms =
          std::any_of(slots.begin(), slots.end(), [](const Slot& s) { return !s.busy; }) ? 0 : 50;
    }
    curl_multi_poll(multi, nullptr, 0, wait_ms, nullptr);
  }
  report.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  report.not_sent = options.count - sent_events;
  for (Slot& slot : slots) curl_easy_cleanup(slot.easy);
  curl_multi_cleanup(multi);
  curl_slist_free_all(headers);
  return report;
}

int RunSendCommand(const SendOptions& options) {
  if (options.key.empty()) {
    std::fprintf(stderr, "pushhook: send needs --key (the site's ingest key)\n");
    return 2;
  }
  const SendReport r = Send(options);
  std::printf(
      "{\"requests\":%llu,\"accepted\":%llu,\"refused\":%llu,\"errors\":%llu,"
      "\"not_sent\":%llu,\"seconds\":%.3f,\"events_per_second\":%.1f}\n",
      static_cast<unsigned long long>(r.requests), static_cast<unsigned long long>(r.accepted),
      static_cast<unsigned long long>(r.refused), static_cast<unsigned long long>(r.errors),
      static_cast<unsigned long long>(r.not_sent), r.seconds,
      r.seconds > 0 ? static_cast<double>(r.accepted) / r.seconds : 0.0);
  if (!r.first_refusal.empty()) {
    std::fprintf(stderr, "pushhook send: the first request refused: %s\n", r.first_refusal.c_str());
  }
  if (r.not_sent > 0) {
    std::fprintf(stderr,
                 "pushhook send: --max-seconds %g ran out with %llu of %llu events not sent\n",
                 options.max_seconds, static_cast<unsigned long long>(r.not_sent),
                 static_cast<unsigned long long>(options.count));
  }
  return r.accepted == options.count ? 0 : 1;
}

}  // namespace pushhook::cli
