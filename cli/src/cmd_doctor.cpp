// kyso doctor [--json] [--usb-inventory FILE] [--profiles FILE] [--config FILE]
//
// Explains, in Vietnamese (English with --lang en), what stands between this PC and signing:
// tokens plugged in without their module, modules that fail to load, PIN states, certificates
// about to expire, the agent's configuration and port. --json is for support tools. The checks
// themselves are kyso::config::run_doctor().

#include <cstdlib>
#include <iostream>
#include <map>

#include "context.hpp"
#include "kyso/config/doctor.hpp"

namespace kyso::cli {
namespace {

using config::CheckStatus;
using config::DoctorOptions;

void cmd_doctor(Context& ctx, const DoctorOptions& o) {
  const auto checks = config::run_doctor(ctx.library(), o);

  std::map<std::string, std::size_t> counts{{"ok", 0}, {"warn", 0}, {"fail", 0}, {"skip", 0}};
  for (const auto& c : checks) ++counts[std::string(config::to_string(c.status))];
  const bool vi = ctx.language() == Language::Vi;
  if (ctx.json) {
    nlohmann::json arr = nlohmann::json::array();
    for (const auto& c : checks) {
      arr.push_back({{"check", c.id},
                     {"status", config::to_string(c.status)},
                     {"message", vi ? c.vi : c.en},
                     {"details", c.details}});
    }
    Context::print_json({{"checks", arr}, {"summary", counts}});
  } else {
    for (const auto& c : checks) {
      const char* mark = c.status == CheckStatus::Ok     ? "[ OK ]"
                         : c.status == CheckStatus::Warn ? "[ !! ]"
                         : c.status == CheckStatus::Fail ? "[LỖI]"
                                                         : "[ -- ]";
      if (!vi && c.status == CheckStatus::Fail) mark = "[FAIL]";
      std::cout << mark << ' ' << (vi ? c.vi : c.en) << '\n';
    }
    std::cout << (vi ? "Tổng kết: " : "Summary: ") << counts["ok"] << " OK, " << counts["warn"]
              << (vi ? " cảnh báo, " : " warnings, ") << counts["fail"]
              << (vi ? " lỗi.\n" : " failures.\n");
  }
  // The report is the output: exit 1 when a check failed, without an error message on top.
  std::cout.flush();
  if (counts["fail"] > 0) std::exit(1);
}

void add_doctor_command(CLI::App& app, Context& ctx) {
  static DoctorOptions o;
  auto* doc = app.add_subcommand(
      "doctor", "Kiểm tra máy và token / check this PC, its tokens and certificates");
  doc->add_flag("--json", ctx.json, "JSON output for support tools");
  doc->add_option("--usb-inventory", o.usb_inventory,
                  "Read USB devices from this file (lsusb output or VID:PID lines)");
  doc->add_option("--profiles", o.profiles,
                  "Token profiles (tokens.toml) instead of the built-in table");
  doc->add_option("--config", o.config, "Check this agent configuration file too");
  doc->add_option("--expiry-days", o.expiry_days,
                  "Warn about certificates expiring within this many days")
      ->check(CLI::Range(1, 365));
  doc->add_option("--local-tls", o.local_tls,
                  "The installer's kyso-local-tls program (default: /usr/sbin/kyso-local-tls)");
  doc->callback([&ctx] { cmd_doctor(ctx, o); });
}

}  // namespace
KYSO_CLI_COMMANDS(add_doctor_command)

}  // namespace kyso::cli
