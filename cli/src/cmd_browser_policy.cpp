// kyso browser-policy write | show | remove [--config FILE] [--root DIR] [--json]
//
// The browsers' managed policy that lets IT's allow-listed transcript sites reach the agent on
// 127.0.0.1 (Local Network Access), written from kyso-agent.toml `[origins] allowed` into
// Chromium's, Chrome's and Edge's managed-policy directories. The package's postinst and the
// kyso-browser-policy.path unit run `write` whenever the configuration changes; `show` is what
// `kyso doctor` reports per browser.

#if __has_include("kyso/firmware_config/agent_config.hpp")

#include <iostream>

#include "browser_policy.hpp"
#include "context.hpp"
#include "kyso/firmware_config/agent_config.hpp"

namespace kyso::cli {
namespace {

namespace bp = browser_policy;

constexpr const char* kInstalledAgentConfig = "/etc/kyso/kyso-agent.toml";

struct PolicyOptions {
  std::string config = kInstalledAgentConfig;
  std::string root = "/";
  bool quiet = false;
};

std::vector<std::string> allow_list(const PolicyOptions& o) {
  std::error_code ec;
  // No configuration (the agent package not installed yet): nothing is allow-listed.
  if (!std::filesystem::exists(o.config, ec)) return {};
  return firmware_config::load_agent_config(o.config).allowed_origins;
}

void cmd_write(Context& ctx, const PolicyOptions& o, bool remove_all) {
  const auto origins = remove_all ? std::vector<std::string>{} : allow_list(o);
  const auto done = remove_all ? bp::remove_files(o.root) : bp::write_files(origins, o.root);
  if (ctx.json) {
    nlohmann::json arr = nlohmann::json::array();
    for (const auto& w : done) {
      arr.push_back({{"browser", w.browser->id},
                     {"file", w.file.string()},
                     {"action", bp::to_string(w.action)}});
    }
    Context::print_json({{"origins", origins}, {"files", arr}});
    return;
  }
  if (o.quiet) return;
  for (const auto& w : done) {
    const char* what = w.action == bp::Action::Written     ? ctx.tr("đã ghi", "written")
                       : w.action == bp::Action::Unchanged ? ctx.tr("không đổi", "unchanged")
                       : w.action == bp::Action::Removed   ? ctx.tr("đã xóa", "removed")
                                                           : ctx.tr("không có", "absent");
    std::cout << w.browser->name << ": " << w.file.string() << " (" << what << ")\n";
  }
  if (origins.empty() && !remove_all) {
    std::cout << ctx.tr(
                     "Danh sách trang web được phép ([origins] allowed) trống: không cần chính "
                     "sách trình duyệt.",
                     "The allow-list ([origins] allowed) is empty: no browser policy needed.")
              << '\n';
  }
}

void cmd_show(Context& ctx, const PolicyOptions& o) {
  const auto origins = allow_list(o);
  const auto all = bp::coverage(origins, o.root);
  bool missing = false;
  const bool vi = ctx.language() == Language::Vi;
  nlohmann::json arr = nlohmann::json::array();
  for (const auto& c : all) {
    if (c.installed && !c.uncovered.empty()) missing = true;
    if (ctx.json) {
      nlohmann::json sources = nlohmann::json::object();
      for (const auto& [k, v] : c.sources) sources[k] = v;
      arr.push_back({{"browser", c.browser->id},
                     {"installed", c.installed},
                     {"policyDir", bp::under(o.root, c.browser->policy_dir).string()},
                     {"covered", c.covered},
                     {"uncovered", c.uncovered},
                     {"sources", sources},
                     {"problems", vi ? c.problems_vi : c.problems_en}});
      continue;
    }
    std::cout << c.browser->name << " ("
              << (c.installed ? ctx.tr("đã cài", "installed") : ctx.tr("chưa cài", "not installed"))
              << ")\n";
    for (const auto& origin : c.covered) std::cout << "  [ OK ] " << origin << '\n';
    for (const auto& origin : c.uncovered)
      std::cout << "  " << (vi ? "[LỖI]" : "[FAIL]") << ' ' << origin << '\n';
    for (const auto& p : vi ? c.problems_vi : c.problems_en) std::cout << "  [ !! ] " << p << '\n';
  }
  if (ctx.json) {
    Context::print_json({{"origins", origins}, {"browsers", arr}});
  } else if (origins.empty()) {
    std::cout << ctx.tr("Danh sách trang web được phép trống.", "The allow-list is empty.") << '\n';
  } else if (missing) {
    std::cout << ctx.tr(
                     "Chạy \"kyso browser-policy write\" (quyền root) để cho phép các trang "
                     "trên trong trình duyệt.",
                     "Run \"kyso browser-policy write\" (as root) to allow these sites in the "
                     "browsers.")
              << '\n';
  }
  std::cout.flush();
  if (missing) std::exit(1);
}

}  // namespace

void add_browser_policy_command(CLI::App& app, Context& ctx) {
  static PolicyOptions o;
  auto* cmd = app.add_subcommand(
      "browser-policy",
      "Chính sách trình duyệt cho phép trang web kết nối tới Kyso / browser policy (Local Network "
      "Access) for the allow-listed sites");
  cmd->require_subcommand(1);
  const auto common = [&ctx](CLI::App* sub, bool config) {
    if (config) {
      sub->add_option("--config", o.config,
                      "The agent configuration whose [origins] allowed is used (default "
                      "/etc/kyso/kyso-agent.toml; missing: nothing is allowed)");
    }
    sub->add_option("--root", o.root,
                    "Prefix for the browsers' policy directories (default /: this machine)");
    sub->add_flag("--json", ctx.json, "JSON output");
  };
  auto* write = cmd->add_subcommand(
      "write",
      "Ghi chính sách từ danh sách được phép / write LocalNetworkAccessAllowedForUrls and "
      "LoopbackNetworkAllowedForUrls for Chromium, Chrome and Edge (removed when the list is "
      "empty)");
  common(write, true);
  write->add_flag("--quiet", o.quiet, "Print nothing (for the package scripts)");
  write->callback([&ctx] { cmd_write(ctx, o, false); });
  auto* show = cmd->add_subcommand(
      "show",
      "Trang nào được phép trong trình duyệt nào / whether each allow-listed origin is covered "
      "by each browser's managed policy (exit 1 when an installed browser misses one)");
  common(show, true);
  show->callback([&ctx] { cmd_show(ctx, o); });
  auto* rm = cmd->add_subcommand(
      "remove", "Xóa tệp chính sách của Kyso / remove Kyso's policy file from every browser");
  common(rm, false);
  rm->add_flag("--quiet", o.quiet, "Print nothing (for the package scripts)");
  rm->callback([&ctx] { cmd_write(ctx, o, true); });
}

}  // namespace kyso::cli

#endif
