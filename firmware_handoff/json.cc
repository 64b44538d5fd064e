// The `rmemd --check-firmware` output, contract section 6: one JSON object,
// lower-case hex strings for addresses and sizes, `firewall` null when absent.
// Initiators are not part of it (the contract fixes the object's keys).
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "firmware_handoff/handoff.h"

namespace rmem::firmware_handoff {
namespace {

std::string Quote(absl::string_view s) {
  std::string out = "\"";
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          absl::StrAppendFormat(&out, "\\u%04x", c);
        } else {
          out.push_back(ch);
        }
    }
  }
  return out + "\"";
}

std::string CarveoutJson(const HandoffCarveout& c) {
  const std::string firewall =
      c.firewall ? absl::StrCat("{\"node\": ", Quote(c.firewall->node),
                                ", \"index\": ", c.firewall->index, "}")
                 : "null";
  return absl::StrCat("{\"base\": ", Quote(Hex(c.base.value())), ", \"size\": ",
                      Quote(Hex(c.size)), ", \"use_case\": ", Quote(c.use_case),
                      ", \"no_map\": ", c.no_map ? "true" : "false", ", \"firewall\": ", firewall,
                      "}");
}

}  // namespace

std::string ToJson(const HandoffResult& result) {
  if (const auto* e = std::get_if<HandoffError>(&result)) {
    return absl::StrCat("{\"result\": \"reject\", \"error\": \"", ErrorKindName(e->kind),
                        "\", \"message\": ", Quote(e->message), "}");
  }
  std::string list;
  for (const HandoffCarveout& c : std::get<std::vector<HandoffCarveout>>(result)) {
    absl::StrAppend(&list, list.empty() ? "" : ", ", CarveoutJson(c));
  }
  return absl::StrCat("{\"result\": \"accept\", \"carveouts\": [", list, "]}");
}

std::string ToJson(const PlatformResult& result) {
  if (const auto* e = std::get_if<HandoffError>(&result)) return ToJson(HandoffResult(*e));
  return ToJson(HandoffResult(std::get<Platform>(result).carveouts));
}

}  // namespace rmem::firmware_handoff
