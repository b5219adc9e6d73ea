#include "model/event.h"

namespace pushhook::model {

std::string_view ActionName(Action action) {
  switch (action) {
    case Action::kView:
      return "View";
    case Action::kClick:
      return "Click";
    case Action::kDismiss:
      return "Dismiss";
  }
  return "View";
}

std::string_view PayloadFormatName(PayloadFormat format) {
  return format == PayloadFormat::kIzooto ? "izooto" : "extended";
}

bool ParsePayloadFormat(std::string_view name, PayloadFormat* out) {
  if (name == "izooto") {
    *out = PayloadFormat::kIzooto;
  } else if (name == "extended") {
    *out = PayloadFormat::kExtended;
  } else {
    return false;
  }
  return true;
}

}  // namespace pushhook::model
