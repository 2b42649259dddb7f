// kyso origins list | revoke ORIGIN ; kyso audit verify [--db PATH]
// The agent's pairings and audit log, for IT staff and users. Built only when kyso::agent exists.

#if __has_include("kyso/agent/pairing.hpp")

#include <iostream>

#include "context.hpp"
#include "kyso/agent/audit.hpp"
#include "kyso/agent/pairing.hpp"

namespace kyso::cli {
namespace {

struct AgentOptions {
  std::string state_dir;
  std::string origin;
  std::string db;
};

std::filesystem::path state_dir(const AgentOptions& o) {
  return o.state_dir.empty() ? agent::default_state_dir() : std::filesystem::path(o.state_dir);
}

void cmd_origins_list(Context& ctx, const AgentOptions& o) {
  const agent::PairingStore store(state_dir(o) / "pairings.json");
  const auto all = store.list();
  if (ctx.json) {
    nlohmann::json arr = nlohmann::json::array();
    for (const auto& p : all) arr.push_back({{"origin", p.origin}, {"pairedAt", p.paired_at}});
    Context::print_json({{"pairings", arr}});
    return;
  }
  if (all.empty()) {
    std::cout << ctx.tr("Chưa có trang web nào được ghép nối.", "No website is paired.") << '\n';
  }
  for (const auto& p : all) std::cout << p.origin << "  " << p.paired_at << '\n';
  std::cout << ctx.tr(
                   "(Danh sách trang web do CNTT cho phép nằm trong tệp cấu hình kyso-agent.toml.)",
                   "(IT's allow-listed websites are in kyso-agent.toml.)")
            << '\n';
}

void cmd_origins_revoke(Context& ctx, const AgentOptions& o) {
  agent::PairingStore store(state_dir(o) / "pairings.json");
  if (!store.remove(o.origin)) {
    throw Error(ErrorCode::BadRequest, "origin " + o.origin + " is not paired");
  }
  std::cout << ctx.tr("Đã hủy ghép nối: ", "Pairing revoked: ") << o.origin << '\n';
}

void cmd_audit_verify(Context& ctx, const AgentOptions& o) {
  const std::filesystem::path db =
      o.db.empty() ? state_dir(o) / "audit.db" : std::filesystem::path(o.db);
  const auto r = agent::AuditLog::verify(db);
  if (ctx.json) {
    nlohmann::json j = {{"ok", r.ok}, {"rows", r.rows}, {"db", db.string()}};
    if (r.first_broken) {
      j["firstBrokenRow"] = *r.first_broken;
      j["reason"] = r.reason;
    }
    j["anchors"] = nlohmann::json::array();
    for (const auto& a : r.anchors) {
      j["anchors"].push_back({{"source", a.source},
                              {"available", a.available},
                              {"anchors", a.anchors},
                              {"note", a.note}});
    }
    Context::print_json(j);
    if (!r.ok) throw CLI::RuntimeError(2);
    return;
  }
  if (r.ok) {
    std::cout << ctx.tr("Nhật ký kiểm toán nguyên vẹn: ", "Audit log intact: ") << r.rows
              << ctx.tr(" dòng, chuỗi băm khớp.", " rows, hash chain matches.") << '\n';
  } else {
    std::cout << ctx.tr("NHẬT KÝ BỊ SỬA ĐỔI tại dòng ", "AUDIT LOG TAMPERED at row ")
              << *r.first_broken << ": " << r.reason << '\n';
  }
  // Which anchors outside the file were compared, and which could not be read.
  for (const auto& a : r.anchors) {
    std::cout << "  " << ctx.tr("Mốc neo ", "Anchor ") << a.source << ": ";
    if (a.available) {
      std::cout << ctx.tr("đã đối chiếu ", "checked ") << a.anchors << ctx.tr(" mốc", " anchor(s)");
    } else {
      std::cout << ctx.tr("KHÔNG đối chiếu được", "NOT checked");
    }
    std::cout << " (" << a.note << ")\n";
  }
  if (!r.ok) throw CLI::RuntimeError(2);
}

}  // namespace

void add_agent_commands(CLI::App& app, Context& ctx) {
  auto opts = std::make_shared<AgentOptions>();
  auto* origins =
      app.add_subcommand("origins", "Trang web đã ghép nối với kyso-agent / paired websites");
  origins->require_subcommand(1);
  origins->add_option("--state-dir", opts->state_dir, "kyso-agent's state directory");
  auto* list = origins->add_subcommand("list", "Liệt kê / list");
  list->add_flag("--json", ctx.json, "JSON output");
  list->callback([&ctx, opts] { cmd_origins_list(ctx, *opts); });
  auto* revoke = origins->add_subcommand("revoke", "Hủy ghép nối / revoke a pairing");
  revoke->add_option("ORIGIN", opts->origin, "e.g. https://hocba.example.edu.vn")->required();
  revoke->callback([&ctx, opts] { cmd_origins_revoke(ctx, *opts); });

  auto* audit =
      app.add_subcommand("audit", "Nhật ký kiểm toán của kyso-agent / the agent's audit log");
  audit->require_subcommand(1);
  auto* verify = audit->add_subcommand(
      "verify", "Kiểm tra chuỗi băm và các mốc neo / check the hash chain and its anchors");
  verify->add_option("--db", opts->db, "audit.db (default: <state dir>/audit.db)");
  verify->add_option("--state-dir", opts->state_dir, "kyso-agent's state directory");
  verify->add_flag("--json", ctx.json, "JSON output");
  verify->callback([&ctx, opts] { cmd_audit_verify(ctx, *opts); });
}

}  // namespace kyso::cli

#endif
