// kyso tokens | credentials | sign-hash | usb

#include <algorithm>
#include <chrono>
#include <iostream>

#include "context.hpp"
#include "kyso/core/roles.hpp"
#include "kyso/core/secret.hpp"
#include "kyso/pkcs11/usb.hpp"

namespace kyso::cli {
namespace {

void cmd_tokens(Context& ctx) {
  auto& lib = ctx.library();
  nlohmann::json modules = nlohmann::json::array();
  for (const auto& m : lib.modules()) {
    modules.push_back({{"path", m.path},
                       {"source", m.source},
                       {"loaded", m.loaded},
                       {"error", m.error},
                       {"manufacturer", m.manufacturer},
                       {"description", m.description}});
  }
  nlohmann::json tokens = nlohmann::json::array();
  for (const auto& t : lib.tokens()) {
    nlohmann::json j = t->info();
    if (const auto* q = t->quirks()) {
      j["quirks"] = *q;
      j["quirksApplied"] = pkcs11::describe(*q, ctx.language());
    }
    tokens.push_back(std::move(j));
  }
  if (ctx.json) {
    Context::print_json({{"modules", modules}, {"tokens", tokens}});
    return;
  }
  for (const auto& m : lib.modules()) {
    if (!m.loaded) {
      std::cout << ctx.tr("! Không nạp được thư viện ", "! Could not load module ") << m.path
                << ": " << m.error << '\n';
    }
  }
  if (tokens.empty()) std::cout << message(ErrorCode::TokenNotFound, ctx.language()) << '\n';
  for (const auto& t : tokens) {
    std::cout << "Token «" << t["label"].get<std::string>() << "»  "
              << t["manufacturer"].get<std::string>() << " " << t["model"].get<std::string>()
              << "  serial " << t["serial"].get<std::string>() << "\n  "
              << ctx.tr("thư viện", "module") << ": " << t["module"].get<std::string>()
              << "\n  PIN: ";
    if (t["pinLocked"].get<bool>())
      std::cout << ctx.tr("BỊ KHÓA", "LOCKED");
    else if (t["pinFinalTry"].get<bool>())
      std::cout << ctx.tr("còn 1 lần thử", "final try");
    else if (t["pinCountLow"].get<bool>())
      std::cout << ctx.tr("đã nhập sai gần đây", "recent wrong tries");
    else
      std::cout << "OK";
    if (t["pinToBeChanged"].get<bool>()) std::cout << ctx.tr(", cần đổi PIN", ", must be changed");
    if (t["protectedAuthPath"].get<bool>())
      std::cout << ctx.tr(", nhập trên bàn phím của token", ", PIN pad");
    std::cout << '\n';
    if (t.contains("quirksApplied"))
      std::cout << "  " << t["quirksApplied"].get<std::string>() << '\n';
  }
}

void cmd_credentials(Context& ctx, const std::string& role_name) {
  const auto creds = credentials_for(ctx, role_name);
  if (ctx.json) {
    nlohmann::json arr = nlohmann::json::array();
    for (const auto& c : creds) {
      nlohmann::json j = c;
      const auto g = guess_role(c.cert);
      j["suggestedRole"] = g ? nlohmann::json(std::string(to_string(*g))) : nlohmann::json(nullptr);
      arr.push_back(std::move(j));
    }
    Context::print_json({{"credentials", arr}});
    return;
  }
  if (creds.empty()) {
    std::cout << message(role_name.empty() ? ErrorCode::CredentialNotFound
                                           : ErrorCode::RoleNoCredential,
                         ctx.language())
              << '\n';
  }
  const auto now = std::chrono::system_clock::now();
  for (const auto& c : creds) {
    const auto g = guess_role(c.cert);
    std::cout << c.id().substr(0, 16) << "  " << c.cert.common_name << "  ["
              << (g ? role_label(*g, ctx.language()) : "?") << "]\n"
              << "    " << c.cert.subject << "\n    " << ctx.tr("Cấp bởi", "Issuer") << ": "
              << c.cert.issuer_common_name << "   " << ctx.tr("Hiệu lực", "Valid") << ": "
              << to_iso8601(c.cert.not_before).substr(0, 10) << " → "
              << to_iso8601(c.cert.not_after).substr(0, 10)
              << (c.cert.valid_at(now) ? "" : ctx.tr("  (HẾT HIỆU LỰC)", "  (NOT VALID NOW)"))
              << "\n    " << c.cert.key_type << "-"
              << (c.cert.curve.empty() ? std::to_string(c.cert.key_bits) : c.cert.curve)
              << "   token «" << c.source.name << "»\n";
  }
}

struct SignHashOptions {
  std::string credential;
  std::string role;
  std::string alg = "rsa-sha256";
  std::string hash;
  std::string pin_file;
  bool raw_ecdsa = false;
};

void cmd_sign_hash(Context& ctx, const SignHashOptions& o) {
  const auto alg = parse_sign_algorithm(o.alg);
  if (!alg) throw Error(ErrorCode::AlgorithmUnsupported, "unknown algorithm " + o.alg);
  const Bytes digest = from_hex(o.hash);
  check_digest(*alg, digest);

  if (o.credential.empty() == o.role.empty()) {
    throw Error(ErrorCode::BadRequest, "give either --credential or --role");
  }
  auto signer = ctx.library().signer(o.role.empty() ? resolve_credential(ctx, o.credential)
                                                    : credential_for_role(ctx, o.role));
  const auto& cred = signer->credential();
  authorize_once(
      ctx, *signer, o.pin_file,
      std::string(ctx.tr("Nhập mã PIN cho token «", "PIN for token «")) + cred.source.name + "»: ");
  const auto enc = o.raw_ecdsa ? SignatureEncoding::Raw : SignatureEncoding::Der;
  const Bytes sig = signer->sign_digest(*alg, digest, enc);
  if (ctx.json) {
    nlohmann::json chain = nlohmann::json::array();
    for (const auto& der : cred.chain) chain.push_back(to_base64(der));
    Context::print_json({{"credential", cred.id()},
                         {"algorithm", o.alg},
                         {"hash", o.hash},
                         {"signature", to_base64(sig)},
                         {"signatureHex", to_hex(sig)},
                         {"certificate", to_base64(cred.cert.der)},
                         {"chain", chain}});
  } else {
    std::cout << to_hex(sig) << '\n';
  }
}

void cmd_usb(Context& ctx) {
  const auto devices = pkcs11::list_usb_devices();
  const auto status = pkcs11::diagnose_usb(devices, pkcs11::builtin_known_tokens());
  if (ctx.json) {
    nlohmann::json arr = nlohmann::json::array();
    for (const auto& s : status) arr.push_back(s);
    Context::print_json({{"usbDevices", devices.size()}, {"tokens", arr}});
    return;
  }
  if (status.empty()) {
    std::cout << ctx.tr("Không thấy token USB nào đã biết (đã quét ",
                        "No known USB token seen (scanned ")
              << devices.size() << ctx.tr(" thiết bị).\n", " devices).\n");
  }
  for (const auto& s : status) {
    std::cout << (ctx.language() == Language::Vi ? s.hint_vi : s.hint_en) << '\n';
  }
}

}  // namespace

void add_token_commands(CLI::App& app, Context& ctx) {
  auto* tokens = app.add_subcommand("tokens", "Liệt kê token / list tokens and loaded modules");
  tokens->add_flag("--json", ctx.json, "JSON output");
  tokens->callback([&ctx] { cmd_tokens(ctx); });

  static std::string role;
  auto* creds = app.add_subcommand("credentials", "Liệt kê chứng thư số / list credentials");
  creds->add_flag("--json", ctx.json, "JSON output");
  creds->add_option("--role", role, "teacher | principal | seal")
      ->check(CLI::IsMember({"teacher", "principal", "seal"}));
  creds->callback([&ctx] { cmd_credentials(ctx, role); });

  static SignHashOptions sh;
  auto* sign = app.add_subcommand("sign-hash", "Ký một giá trị băm / sign one hash");
  sign->add_option("--credential", sh.credential, "Credential id (or a unique prefix)");
  sign->add_option("--role", sh.role, "Or: the valid credential that fits this role")
      ->check(CLI::IsMember({"teacher", "principal", "seal"}));
  sign->add_option("--alg", sh.alg,
                   "rsa-sha256 | rsa-pss-sha256 | ecdsa-sha256 | ... (sha384, sha512)");
  sign->add_option("--hash", sh.hash, "Hex digest to sign")->required();
  sign->add_option("--pin-file", sh.pin_file,
                   "Read the PIN from this file (mode 600) instead of the terminal");
  sign->add_flag("--raw-ecdsa", sh.raw_ecdsa, "ECDSA as raw r||s instead of DER");
  sign->add_flag("--json", ctx.json, "JSON output");
  sign->callback([&ctx] { cmd_sign_hash(ctx, sh); });

  auto* usb =
      app.add_subcommand("usb", "Token USB đang cắm / USB tokens plugged in and their modules");
  usb->add_flag("--json", ctx.json, "JSON output");
  usb->callback([&ctx] { cmd_usb(ctx); });
}

}  // namespace kyso::cli
