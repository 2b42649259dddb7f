// kyso doctor [--json] [--usb-inventory FILE] [--profiles FILE] [--config FILE] [--verifyd-config
// FILE]
//             [--max-clock-skew SECONDS]
//
// Explains, in Vietnamese (English with --lang en), what stands between this PC and signing:
// tokens plugged in without their module, modules that fail to load, PIN states, certificates
// about to expire, the agent's configuration and port, the local wss CA's trust, the clock
// against the configured TSA and the remote signing services. --json is for support tools. The
// checks themselves are in doctor/, one file per family.

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>

#include "context.hpp"
#include "doctor/doctor.hpp"
#include "kyso/core/error.hpp"
#include "kyso/firmware_config/agent_config.hpp"

namespace kyso::cli {
namespace {

using doctor::Status;

// The installed agent's configuration (its systemd unit's --config) when none is named.
constexpr const char* kInstalledAgentConfig = "/etc/kyso/kyso-agent.toml";
// The installed verification service's profile, checked when present.
constexpr const char* kInstalledVerifydConfig = "/etc/kyso/kyso-verifyd.toml";

void cmd_doctor(Context& ctx, doctor::Options o, bool no_config) {
  std::error_code ec;
  if (o.config.empty() && !no_config && std::filesystem::exists(kInstalledAgentConfig, ec)) {
    o.config = kInstalledAgentConfig;
  }
  if (o.verifyd_config.empty() && !no_config &&
      std::filesystem::exists(kInstalledVerifydConfig, ec)) {
    o.verifyd_config = kInstalledVerifydConfig;
  }
  // The agent's configuration names the profiles it runs with: doctor checks those unless told
  // otherwise (a configuration that does not load is the config check's to report).
  if (o.profiles.empty() && !o.config.empty()) {
    try {
      o.profiles = firmware_config::load_agent_config(o.config).token_profiles;
    } catch (const Error&) {  // NOLINT(bugprone-empty-catch): reported by the config check
    }
  }
  // The quirks doctor reports applied are those of the profiles it checks.
  if (!o.profiles.empty()) ctx.profiles = o.profiles;
  const auto checks = doctor::run(ctx.library(), o);

  std::map<std::string, std::size_t> counts{{"ok", 0}, {"warn", 0}, {"fail", 0}, {"skip", 0}};
  for (const auto& c : checks) ++counts[std::string(doctor::to_string(c.status))];
  const bool vi = ctx.language() == Language::Vi;
  if (ctx.json) {
    nlohmann::json arr = nlohmann::json::array();
    for (const auto& c : checks) {
      arr.push_back({{"check", c.id},
                     {"status", doctor::to_string(c.status)},
                     {"message", vi ? c.vi : c.en},
                     {"details", c.details}});
    }
    Context::print_json({{"checks", arr}, {"summary", counts}});
  } else {
    for (const auto& c : checks) {
      const char* mark = c.status == Status::Ok     ? "[ OK ]"
                         : c.status == Status::Warn ? "[ !! ]"
                         : c.status == Status::Fail ? "[LỖI]"
                                                    : "[ -- ]";
      if (!vi && c.status == Status::Fail) mark = "[FAIL]";
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

}  // namespace

void add_doctor_command(CLI::App& app, Context& ctx) {
  static doctor::Options o;
  static bool no_config = false;
  static int max_skew = 60;
  auto* doc = app.add_subcommand(
      "doctor", "Kiểm tra máy và token / check this PC, its tokens and certificates");
  doc->add_flag("--json", ctx.json, "JSON output for support tools");
  doc->add_option("--usb-inventory", o.usb_inventory,
                  "Read USB devices from this file (lsusb output or VID:PID lines)");
  doc->add_option("--profiles", o.profiles,
                  "Token profiles (tokens.toml) instead of the built-in table or the agent "
                  "configuration's");
  doc->add_option("--config", o.config,
                  "The agent configuration to check (and take the port, TSA, remote services "
                  "and token profiles from); default /etc/kyso/kyso-agent.toml when it exists");
  doc->add_option("--verifyd-config", o.verifyd_config,
                  "kyso-verifyd's profile to check, and the service on its port; default "
                  "/etc/kyso/kyso-verifyd.toml when it exists");
  doc->add_flag("--no-config", no_config,
                "Do not read the installed agent and verification service configurations");
  doc->add_option("--max-clock-skew", max_skew,
                  "Warn when the clock and the TSA's differ by more seconds than this (60)")
      ->check(CLI::Range(1, 86400));
  doc->add_option("--expiry-days", o.expiry_days,
                  "Warn about certificates expiring within this many days")
      ->check(CLI::Range(1, 365));
  doc->add_option("--root", o.root,
                  "Look for browsers and their managed policy under this directory instead of /");
  doc->add_option("--local-tls", o.local_tls,
                  "The installer's kyso-local-tls program (default: /usr/sbin/kyso-local-tls)");
  doc->callback([&ctx] {
    o.max_clock_skew = std::chrono::seconds(max_skew);
    cmd_doctor(ctx, o, no_config);
  });
}

}  // namespace kyso::cli
