// kyso extend FILE|DIR…: signed transcripts to B-LT or B-LTA (validation data, archive
// timestamps), and re-timestamping of archives from IT's timer (--renew-before).

#include <filesystem>
#include <iostream>

#include "context.hpp"
#include "kyso/firmware_config/agent_config.hpp"
#include "kyso/formats/extend.hpp"

namespace kyso::cli {
namespace {

struct ExtendArgs {
  std::vector<std::string> paths;
  std::string to;
  std::string config;
  std::string tsa;
  std::vector<std::string> trust;
  std::vector<std::string> intermediates;
  std::vector<std::string> crls;
  std::string ocsp_url;
  std::string content;
  int renew_before_days = -1;
  int timeout = 20;
};

bool is_document(const std::filesystem::path& p) {
  const std::string e = p.extension().string();
  return e == ".pdf" || e == ".PDF" || e == ".xml" || e == ".XML" || e == ".p7s" || e == ".p7m";
}

// Files named, and in folders every .pdf/.xml/.p7s/.p7m below them, in a stable order.
std::vector<std::string> expand(const std::vector<std::string>& paths) {
  std::vector<std::string> out;
  for (const auto& p : paths) {
    if (!std::filesystem::is_directory(p)) {
      out.push_back(p);
      continue;
    }
    std::vector<std::string> found;
    for (const auto& e : std::filesystem::recursive_directory_iterator(p)) {
      if (e.is_regular_file() && is_document(e.path())) found.push_back(e.path().string());
    }
    std::ranges::sort(found);
    out.insert(out.end(), found.begin(), found.end());
  }
  return out;
}

formats::ExtendOptions options(const ExtendArgs& a) {
  formats::ExtendOptions o;
  o.to = a.to == "lta" ? formats::BaselineLevel::LTA : formats::BaselineLevel::LT;
  std::string tsa_url = a.tsa;
  std::vector<std::string> anchors = a.trust;
  std::string ocsp_url = a.ocsp_url;
  // The agent's configuration names the TSA, the anchors and the OCSP proxy this school uses.
  const std::string config = !a.config.empty() ? a.config
                             : std::filesystem::exists("/etc/kyso/kyso-agent.toml")
                                 ? "/etc/kyso/kyso-agent.toml"
                                 : "";
  if (!config.empty()) {
    const firmware_config::AgentConfig c = firmware_config::load_agent_config(config);
    if (tsa_url.empty()) tsa_url = c.tsa_url;
    if (anchors.empty()) anchors = c.trust_anchors;
    if (ocsp_url.empty()) ocsp_url = c.ocsp_url;
  }
  if (anchors.empty()) anchors = default_trust_anchors();
  o.trust.anchors = anchors;
  o.trust.intermediates = a.intermediates;
  o.trust.crl_files = a.crls;
  o.trust.ocsp_url = ocsp_url;
  o.content = a.content;
  o.trust.timeout = std::chrono::seconds(a.timeout);
  if (!tsa_url.empty()) {
    formats::TsaConfig t;
    t.url = tsa_url;
    t.trusted_pem = anchors;
    t.timeout = std::chrono::seconds(a.timeout);
    o.tsa = t;
  }
  if (a.renew_before_days >= 0) o.renew_before = std::chrono::hours(24 * a.renew_before_days);
  return o;
}

void cmd_extend(Context& ctx, const ExtendArgs& a) {
  if (a.renew_before_days >= 0 && a.to != "lta") {
    throw Error(ErrorCode::BadRequest, "--renew-before needs --to lta");
  }
  const formats::ExtendOptions o = options(a);
  const std::vector<std::string> files = expand(a.paths);
  int extended = 0;
  int unchanged = 0;
  int failed = 0;
  nlohmann::json results = nlohmann::json::array();
  for (const auto& f : files) {
    try {
      const formats::ExtendResult r = formats::extend_file(f, o);
      (r.changed ? extended : unchanged)++;
      const std::string before(formats::to_string(r.before));
      const std::string after(formats::to_string(r.after));
      const std::string until = r.covered_until ? to_iso8601(*r.covered_until) : "";
      if (ctx.json) {
        results.push_back({{"file", f},
                           {"ok", true},
                           {"changed", r.changed},
                           {"before", before},
                           {"after", after},
                           {"bytesAdded", r.bytes_added},
                           {"added", r.added},
                           {"coveredUntil", r.covered_until ? nlohmann::json(until) : nullptr}});
        continue;
      }
      std::cout << f << ": ";
      if (r.changed) {
        std::cout << before << " -> " << after << " (+" << r.bytes_added << " byte)";
      } else {
        std::cout << ctx.tr("đã ở mức ", "already ") << after
                  << ctx.tr(", không thay đổi", ", unchanged");
      }
      if (!until.empty()) std::cout << ctx.tr("; bảo đảm đến ", "; covered until ") << until;
      std::cout << '\n';
      for (const auto& line : r.added) std::cout << "  + " << line << '\n';
    } catch (const Error& e) {
      ++failed;
      if (ctx.json) {
        results.push_back({{"file", f},
                           {"ok", false},
                           {"error",
                            {{"code", std::string(e.name())},
                             {"message", std::string(e.message(ctx.language()))},
                             {"detail", e.detail()}}}});
      } else {
        std::cout << f << ": " << ctx.tr("LỖI", "ERROR") << " [" << e.name()
                  << "]: " << e.message(ctx.language()) << "\n  (" << e.detail() << ")\n";
      }
    }
  }
  if (ctx.json) {
    Context::print_json(
        {{"files", results}, {"extended", extended}, {"unchanged", unchanged}, {"failed", failed}});
  } else {
    std::cout << ctx.tr("Tổng: ", "Total: ") << files.size() << ctx.tr(" tệp, ", " file(s), ")
              << extended << ctx.tr(" đã gia hạn, ", " extended, ") << unchanged
              << ctx.tr(" không cần thay đổi, ", " unchanged, ") << failed
              << ctx.tr(" lỗi", " failed") << '\n';
  }
  if (failed > 0) throw CLI::RuntimeError(2);
}

}  // namespace

void add_extend(CLI::App& app, Context& ctx) {
  static ExtendArgs args;
  auto* e = app.add_subcommand(
      "extend",
      "Bổ sung dữ liệu kiểm tra dài hạn (B-LT/B-LTA) / extend signatures to B-LT or B-LTA");
  e->add_option("paths", args.paths, "Signed files (.pdf, .xml, .p7s, .p7m) or folders of them")
      ->required()
      ->check(CLI::ExistingPath);
  e->add_option("--to", args.to,
                "Target level: lt (validation data) or lta (and an archive timestamp)")
      ->required()
      ->check(CLI::IsMember({"lt", "lta"}));
  e->add_option("--renew-before", args.renew_before_days,
                "With --to lta: add a new archive timestamp when the last one's certificate "
                "expires within DAYS")
      ->check(CLI::Range(0, 36500));
  e->add_option("--tsa", args.tsa, "RFC 3161 TSA URL (default: the configuration's tsa_url)");
  e->add_option("--config", args.config,
                "Agent configuration for tsa_url, trust anchors and ocsp_url (default "
                "/etc/kyso/kyso-agent.toml when it exists)")
      ->check(CLI::ExistingFile);
  e->add_option("--trust", args.trust,
                "Trust anchor certificate file (repeatable; default: the configuration's, else "
                "/etc/kyso/trust/*.pem)");
  e->add_option("--ca", args.intermediates, "Extra intermediate CA certificate file (repeatable)");
  e->add_option("--crl", args.crls, "Local CRL file (repeatable)");
  e->add_option("--ocsp-url", args.ocsp_url,
                "OCSP responder to ask instead of the certificates' own (default: the "
                "configuration's ocsp_url)");
  e->add_option("--content", args.content, "The signed file, for a detached CMS signature")
      ->check(CLI::ExistingFile);
  e->add_option("--timeout", args.timeout, "Seconds to wait for OCSP, CRL and TSA servers")
      ->check(CLI::Range(1, 600));
  e->add_flag("--json", ctx.json, "JSON output");
  e->callback([&ctx] { cmd_extend(ctx, args); });
}

}  // namespace kyso::cli
