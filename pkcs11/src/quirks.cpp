#include "kyso/pkcs11/quirks.hpp"

#include <nlohmann/json.hpp>

namespace kyso::pkcs11 {

std::optional<KeyFamily> parse_key_family(std::string_view name) noexcept {
  if (name == "rsa") return KeyFamily::Rsa;
  if (name == "rsa-pss") return KeyFamily::RsaPss;
  if (name == "ecdsa") return KeyFamily::Ecdsa;
  return std::nullopt;
}

std::string_view to_string(KeyFamily f) noexcept {
  switch (f) {
    case KeyFamily::RsaPss:
      return "rsa-pss";
    case KeyFamily::Ecdsa:
      return "ecdsa";
    case KeyFamily::Rsa:
      break;
  }
  return "rsa";
}

KeyFamily family_of(SignAlgorithm alg) noexcept {
  if (is_ecdsa(alg)) return KeyFamily::Ecdsa;
  return is_pss(alg) ? KeyFamily::RsaPss : KeyFamily::Rsa;
}

bool TokenQuirks::matches(std::string_view token_manufacturer, std::string_view token_model,
                          Version firmware) const {
  if (!manufacturer.empty() && token_manufacturer.find(manufacturer) == std::string_view::npos) {
    return false;
  }
  if (!model.empty() && token_model.find(model) == std::string_view::npos) return false;
  if (firmware_min && firmware < *firmware_min) return false;
  if (firmware_max && *firmware_max < firmware) return false;
  return true;
}

void to_json(nlohmann::json& j, const TokenQuirks& q) {
  auto families = [](const std::vector<KeyFamily>& v) {
    nlohmann::json a = nlohmann::json::array();
    for (auto f : v) a.push_back(std::string(to_string(f)));
    return a;
  };
  auto version = [](const std::optional<Version>& v) -> nlohmann::json {
    if (!v) return nullptr;
    return std::to_string(v->major) + "." + std::to_string(v->minor);
  };
  j = {{"profile", q.profile},
       {"manufacturer", q.manufacturer},
       {"model", q.model},
       {"firmwareMin", version(q.firmware_min)},
       {"firmwareMax", version(q.firmware_max)},
       {"avoid", families(q.avoid)},
       {"prefer", families(q.prefer)},
       {"loginSurvivesSessionClose", q.login_survives_session_close},
       {"reinitializeAfterHotplug", q.reinitialize_after_hotplug},
       {"pinPerSignature", q.pin_per_signature},
       {"note", q.note}};
}

std::string describe(const TokenQuirks& q, Language lang) {
  const bool vi = lang == Language::Vi;
  auto families = [](const std::vector<KeyFamily>& v) {
    std::string out;
    for (auto f : v) out += (out.empty() ? "" : ", ") + std::string(to_string(f));
    return out;
  };
  std::string out = (vi ? "Áp dụng đặc điểm đã biết của " : "Known quirks of ") + q.profile +
                    (vi ? "" : " applied");
  std::vector<std::string> what;
  if (!q.avoid.empty()) {
    what.push_back((vi ? "không dùng " : "not offering ") + families(q.avoid));
  }
  if (!q.prefer.empty()) {
    what.push_back((vi ? "ưu tiên khóa " : "keys first: ") + families(q.prefer));
  }
  if (!q.login_survives_session_close) {
    what.push_back(vi ? "giữ một phiên mở suốt thời gian đăng nhập"
                      : "a session kept open for the whole login");
  }
  if (q.reinitialize_after_hotplug) {
    what.push_back(vi ? "khởi tạo lại thư viện khi token được cắm lại"
                      : "module re-initialized when the token is plugged in again");
  }
  if (q.pin_per_signature) {
    what.push_back(vi ? "hỏi mã PIN cho từng chữ ký với khóa yêu cầu PIN mỗi lần ký"
                      : "the PIN asked for each signature with a key that needs it every time");
  }
  for (std::size_t i = 0; i < what.size(); ++i) out += (i == 0 ? ": " : "; ") + what[i];
  if (!q.note.empty()) out += " (" + q.note + ")";
  return out + ".";
}

}  // namespace kyso::pkcs11
