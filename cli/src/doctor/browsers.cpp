// The browsers check: whether each installed Chromium-family browser lets the allow-listed
// transcript sites reach the agent (Local Network Access), by the managed policy in effect.

#include <algorithm>

#include "../browser_policy.hpp"
#include "doctor.hpp"

namespace kyso::cli::doctor {

namespace {

std::string joined(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
  return out;
}

}  // namespace

void check_browser_policy(Checks& out, const std::optional<firmware_config::AgentConfig>& agent,
                          const Options& o) {
  namespace bp = browser_policy;
  const std::vector<std::string> origins =
      agent ? agent->allowed_origins : std::vector<std::string>{};
  if (origins.empty()) {
    out.push_back({"browser",
                   Status::Skip,
                   "Danh sách trang web được phép trống: không cần chính sách trình duyệt.",
                   "The allow-list is empty: no browser policy is needed.",
                   {}});
    return;
  }
  // Only https sites are gated (pages on loopback are not; plain http is denied whatever the
  // policy says), so only they need the policy.
  bool any = false;
  for (const auto& c : bp::coverage(origins, o.root)) {
    if (!c.installed) continue;
    any = true;
    std::vector<std::string> problems_vi = c.problems_vi;
    std::vector<std::string> problems_en = c.problems_en;
    nlohmann::json details = {{"browser", c.browser->id},
                              {"policyDir", bp::under(o.root, c.browser->policy_dir).string()},
                              {"covered", c.covered},
                              {"uncovered", c.uncovered}};
    if (!c.uncovered.empty()) {
      out.push_back(
          {"browser", Status::Warn,
           c.browser->name + ": chính sách quản lý chưa cho phép " + joined(c.uncovered) +
               " kết nối tới kyso-agent; người dùng sẽ phải bấm \"Cho phép\" trong trình duyệt. "
               "Chạy \"kyso browser-policy write\" (quyền root).",
           c.browser->name + ": the managed policy does not let " + joined(c.uncovered) +
               " reach kyso-agent; users must click \"Allow\" in the browser. Run \"kyso "
               "browser-policy write\" (as root).",
           details});
    } else if (!problems_en.empty()) {
      out.push_back({"browser", Status::Warn, c.browser->name + ": " + joined(problems_vi),
                     c.browser->name + ": " + joined(problems_en), details});
    } else {
      out.push_back({"browser", Status::Ok,
                     c.browser->name + ": các trang được phép đều kết nối được tới kyso-agent.",
                     c.browser->name + ": every allow-listed site may reach kyso-agent.", details});
    }
  }
  if (!any) {
    out.push_back({"browser",
                   Status::Skip,
                   "Không thấy Chromium, Chrome hay Edge trên máy này.",
                   "No Chromium, Chrome or Edge found on this PC.",
                   {}});
  }
}

}  // namespace kyso::cli::doctor
