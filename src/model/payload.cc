#include "model/payload.h"

#include <charconv>

#include "model/json_string.h"
#include "model/rfc3339.h"

namespace pushhook::model {

void AppendPayload(std::string& out, const Event& e, PayloadFormat format,
                   std::string_view site_id) {
  out.append("{\"action\":");
  AppendJsonString(out, ActionName(e.action));
  out.append(",\"cookie_id\":");
  AppendJsonString(out, e.cookie_id);
  out.append(",\"cid\":");
  AppendJsonString(out, e.cid);
  out.append(",\"notification_title\":");
  AppendJsonString(out, e.notification_title);
  out.append(",\"reference_id\":");
  AppendJsonString(out, e.reference_id);
  out.append(",\"utm_campaign\":");
  AppendJsonString(out, e.utm_campaign);
  out.append(",\"utm_content\":");
  AppendJsonString(out, e.utm_content);
  out.append(",\"utm_medium\":");
  AppendJsonString(out, e.utm_medium);
  out.append(",\"utm_source\":");
  AppendJsonString(out, e.utm_source);
  out.append(",\"utm_term\":");
  AppendJsonString(out, e.utm_term);
  out.append(",\"clicked_button\":");
  char digits[16];
  auto [end, ec] = std::to_chars(digits, digits + sizeof(digits), e.clicked_button);
  out.append(digits, end);
  if (format == PayloadFormat::kExtended) {
    out.append(",\"event_id\":");
    AppendJsonString(out, e.event_id);
    out.append(",\"site_id\":");
    AppendJsonString(out, site_id);
    out.append(",\"occurred_at\":");
    AppendJsonString(out, FormatRfc3339Ms(e.occurred_at_ms));
  }
  out.push_back('}');
}

std::string Payload(const Event& event, PayloadFormat format, std::string_view site_id) {
  std::string out;
  out.reserve(320);
  AppendPayload(out, event, format, site_id);
  return out;
}

}  // namespace pushhook::model
