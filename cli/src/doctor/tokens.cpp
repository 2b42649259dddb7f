// The token checks: USB tokens vs. installed modules, module load failures, PIN state per token
// and certificates about to expire.

#include <fstream>
#include <memory>
#include <regex>

#include "doctor.hpp"
#include "kyso/core/certificate.hpp"
#include "kyso/core/error.hpp"
#include "kyso/pkcs11/quirks.hpp"
#include "kyso/pkcs11/usb.hpp"

namespace kyso::cli::doctor {

// An inventory is `lsusb` output or one "VID:PID" per line: the first vvvv:pppp on each line.
std::vector<pkcs11::UsbDevice> read_usb_inventory(const std::string& file) {
  std::ifstream in(file);
  if (!in) throw Error(ErrorCode::BadRequest, file + ": cannot read the USB inventory");
  static const std::regex id(R"(([0-9A-Fa-f]{4}):([0-9A-Fa-f]{4}))");
  std::vector<pkcs11::UsbDevice> out;
  std::string line;
  std::uint8_t n = 0;
  while (std::getline(in, line)) {
    std::smatch m;
    if (!std::regex_search(line, m, id)) continue;
    pkcs11::UsbDevice d;
    d.vendor_id = static_cast<std::uint16_t>(std::stoul(m[1].str(), nullptr, 16));
    d.product_id = static_cast<std::uint16_t>(std::stoul(m[2].str(), nullptr, 16));
    d.bus = 1;
    d.address = ++n;
    out.push_back(d);
  }
  return out;
}

void check_usb(Checks& out, const Options& o,
               const std::vector<firmware_config::TokenProfile>& profiles) {
  const auto devices =
      o.usb_inventory.empty() ? pkcs11::list_usb_devices() : read_usb_inventory(o.usb_inventory);
  const auto table = firmware_config::to_known_tokens(profiles);
  const auto status = pkcs11::diagnose_usb(devices, table);
  if (status.empty()) {
    out.push_back({"usb",
                   Status::Warn,
                   "Không thấy token USB nào đã biết (đã quét " + std::to_string(devices.size()) +
                       " thiết bị). Hãy cắm token, hoặc token này chưa có trong bảng token.",
                   "No known USB token seen (" + std::to_string(devices.size()) +
                       " devices scanned). Plug in the token, or it is not in the token table.",
                   {{"devices", devices.size()}}});
    return;
  }
  for (const auto& s : status) {
    nlohmann::json j = s;
    out.push_back({"usb", s.module ? Status::Ok : Status::Fail, s.hint_vi, s.hint_en, j});
  }
}

void check_modules(Checks& out, pkcs11::Library& lib) {
  for (const auto& m : lib.modules()) {
    nlohmann::json j{
        {"path", m.path}, {"source", m.source}, {"loaded", m.loaded}, {"error", m.error}};
    if (m.loaded) {
      out.push_back({"module", Status::Ok,
                     "Đã nạp thư viện " + m.path + " (" + m.description + ").",
                     "Module " + m.path + " loaded (" + m.description + ").", j});
    } else {
      out.push_back(
          {"module", Status::Fail,
           "Không nạp được thư viện " + m.path + ": " + m.error +
               ". Hãy cài lại phần mềm của token hoặc bỏ đường dẫn này khỏi cấu hình.",
           "Module " + m.path + " failed to load: " + m.error +
               ". Reinstall the token's software or remove this path from the configuration.",
           j});
    }
  }
}

namespace {

// A token the library could not list or read: the error's own messages, its detail as the fact.
Check token_error(const Error& e) {
  return {"token",
          Status::Fail,
          std::string(e.message(Language::Vi)),
          std::string(e.message(Language::En)),
          {{"error", e.detail()}}};
}

}  // namespace

void check_tokens_and_certificates(Checks& out, pkcs11::Library& lib, int expiry_days) {
  std::vector<std::shared_ptr<pkcs11::Token>> tokens;
  try {
    tokens = lib.tokens();
  } catch (const Error& e) {
    out.push_back(token_error(e));
    return;
  }
  if (tokens.empty()) {
    out.push_back({"token", Status::Warn,
                   std::string(message(ErrorCode::TokenNotFound, Language::Vi)),
                   std::string(message(ErrorCode::TokenNotFound, Language::En))});
  }
  const auto now = std::chrono::system_clock::now();
  const auto soon = now + std::chrono::hours(24) * expiry_days;
  for (const auto& t : tokens) {
    pkcs11::TokenInfo info;
    try {
      info = t->info();
    } catch (const Error& e) {
      out.push_back(token_error(e));
      continue;
    }
    const std::string name = "«" + info.label + "» (serial " + info.serial + ")";
    Check c{"token", Status::Ok, "Token " + name + ": PIN bình thường.",
            "Token " + name + ": PIN OK.", info};
    if (info.pin_locked) {
      c = {
          "token", Status::Fail,
          "Token " + name +
              ": PIN đã bị khóa. Cán bộ CNTT cần mở khóa bằng SO PIN (kyso provision unblock-pin).",
          "Token " + name +
              ": the PIN is locked. IT must unblock it with the SO PIN (kyso provision "
              "unblock-pin).",
          info};
    } else if (!info.user_pin_initialized) {
      c = {"token", Status::Warn,
           "Token " + name + ": chưa đặt PIN người dùng (kyso provision unblock-pin).",
           "Token " + name + ": no user PIN set yet (kyso provision unblock-pin).", info};
    } else if (info.pin_final_try) {
      c = {"token", Status::Warn,
           "Token " + name + ": chỉ còn 1 lần nhập PIN. Nhập sai nữa token sẽ bị khóa.",
           "Token " + name + ": one PIN try left; one more wrong PIN locks the token.", info};
    } else if (info.pin_count_low) {
      c = {"token", Status::Warn, "Token " + name + ": đã nhập sai PIN gần đây; hãy cẩn thận.",
           "Token " + name + ": wrong PINs were entered recently; take care.", info};
    } else if (info.pin_to_be_changed) {
      c = {
          "token", Status::Warn,
          "Token " + name + ": cần đổi PIN trước khi ký (kyso provision change-pin).",
          "Token " + name + ": the PIN must be changed before signing (kyso provision change-pin).",
          info};
    }
    out.push_back(std::move(c));
    if (const auto* q = t->quirks()) {
      out.push_back(
          {"quirk", Status::Ok, "Token " + name + ": " + pkcs11::describe(*q, Language::Vi),
           "Token " + name + ": " + pkcs11::describe(*q, Language::En), nlohmann::json(*q)});
    }

    std::vector<Credential> creds;
    try {
      creds = t->credentials();
    } catch (const Error&) {
      continue;
    }
    for (const auto& cr : creds) {
      const std::string who = cr.cert.common_name + " (" + cr.id().substr(0, 16) + ")";
      const std::string until = to_iso8601(cr.cert.not_after).substr(0, 10);
      const auto days =
          std::chrono::duration_cast<std::chrono::hours>(cr.cert.not_after - now).count() / 24;
      nlohmann::json j{{"credential", cr.id()},
                       {"subject", cr.cert.subject},
                       {"token", info.label},
                       {"notAfter", to_iso8601(cr.cert.not_after)},
                       {"daysLeft", days}};
      if (cr.cert.not_after < now) {
        out.push_back(
            {"certificate", Status::Fail,
             "Chứng thư số của " + who + " đã hết hạn ngày " + until + ". Hãy xin cấp lại.",
             "The certificate of " + who + " expired on " + until + ". Ask the CA for a new one.",
             j});
      } else if (cr.cert.not_before > now) {
        out.push_back(
            {"certificate", Status::Warn,
             "Chứng thư số của " + who + " chưa đến ngày hiệu lực. Kiểm tra đồng hồ máy tính.",
             "The certificate of " + who + " is not valid yet. Check the computer's clock.", j});
      } else if (cr.cert.not_after < soon) {
        out.push_back({"certificate", Status::Warn,
                       "Chứng thư số của " + who + " hết hạn ngày " + until + " (còn " +
                           std::to_string(days) + " ngày). Hãy gia hạn sớm.",
                       "The certificate of " + who + " expires on " + until + " (" +
                           std::to_string(days) + " days left). Renew it soon.",
                       j});
      } else {
        out.push_back({"certificate", Status::Ok,
                       "Chứng thư số của " + who + " còn hiệu lực đến " + until + ".",
                       "The certificate of " + who + " is valid until " + until + ".", j});
      }
    }
  }
}

}  // namespace kyso::cli::doctor
