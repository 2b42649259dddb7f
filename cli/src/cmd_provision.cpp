// kyso provision init-token | change-pin | unblock-pin | keygen | keys | csr | import-cert | batch
//
// For IT staff preparing tokens. PINs come from the terminal (no echo) or from files given with
// --pin-file / --so-pin-file (mode 600); never from the command line, where `ps` shows them.

#include <unistd.h>

#include <fstream>
#include <iostream>

#include "context.hpp"
#include "kyso/core/secret.hpp"
#include "kyso/firmware_config/provision.hpp"

namespace kyso::cli {
namespace {

namespace fs = std::filesystem;
using firmware_config::Provisioner;

struct ProvisionOptions {
  std::string token;
  std::string label;
  std::string target;
  bool force = false;
  std::string pin_file;
  std::string so_pin_file;
  std::string new_pin_file;
  bool so = false;
  std::string alg = "rsa2048";
  std::string key_label = "kyso-sign";
  std::string id_hex;
  std::string key;
  std::string subject;
  std::string out;
  std::vector<std::string> certs;
  // batch
  std::string csv;
  std::string state;
  std::string certs_dir;
  std::string report;
  std::size_t limit = 0;
  bool no_init = false;
  bool wait = false;
  std::string org, unit, locality, province, title;
  // token profile
  std::string model;
  std::string profiles;
};

std::string module_path(const Context& ctx) {
  if (!ctx.modules.empty()) return ctx.modules.front();
  if (const char* env = std::getenv("KYSO_PKCS11_MODULE"); env != nullptr && *env != '\0')
    return env;
  throw Error(
      ErrorCode::BadRequest,
      "provisioning needs the token's module: --module /usr/lib/x86_64-linux-gnu/opensc-pkcs11.so");
}

// Holds the provisioner to the token model's profile when --token-model is given.
void apply_profile(Provisioner& p, const ProvisionOptions& o) {
  if (o.model.empty()) return;
  const auto profiles = o.profiles.empty() ? firmware_config::default_token_profiles()
                                           : firmware_config::load_token_profiles(o.profiles);
  std::string known;
  for (const auto& prof : profiles) {
    if (prof.token.model == o.model || prof.token.vendor + " " + prof.token.model == o.model) {
      p.set_profile(prof);
      return;
    }
    known += (known.empty() ? "" : ", ") + prof.token.model;
  }
  throw Error(ErrorCode::BadRequest,
              "no token profile for model '" + o.model + "' (known: " + known + ")");
}

Secret read_pin(const Context& ctx, const std::string& file, const char* vi, const char* en) {
  if (!file.empty()) return Secret::from_file(file);
  return Secret::from_terminal(ctx.tr(vi, en));
}

// A new PIN from a file, or typed twice on the terminal.
Secret read_new_pin(const Context& ctx, const std::string& file, const char* vi, const char* en) {
  if (!file.empty()) return Secret::from_file(file);
  Secret first = Secret::from_terminal(ctx.tr(vi, en));
  Secret again = Secret::from_terminal(ctx.tr("Nhập lại: ", "Again: "));
  if (first.view() != again.view()) {
    throw Error(ErrorCode::PinInvalid, "the two entries differ");
  }
  return first;
}

void print_key(const Context& ctx, const pkcs11::KeyPairInfo& k) {
  if (ctx.json) {
    Context::print_json({{"id", to_hex(k.id)},
                         {"label", k.label},
                         {"type", k.key_type},
                         {"publicKey", to_base64(k.spki)}});
  } else {
    std::cout << k.key_type << "  id " << to_hex(k.id) << "  «" << k.label << "»\n";
  }
}

void cmd_init(Context& ctx, const ProvisionOptions& o) {
  Provisioner p(module_path(ctx));
  apply_profile(p, o);
  Secret so = read_new_pin(ctx, o.so_pin_file, "PIN quản trị (SO PIN) mới: ", "New SO PIN: ");
  Secret user = read_new_pin(ctx, o.pin_file, "PIN người dùng mới: ", "New user PIN: ");
  const auto r =
      p.init_token(o.label, so, user,
                   o.target.empty() ? std::nullopt : std::optional<std::string>(o.target), o.force);
  if (ctx.json) {
    Context::print_json({{"label", r.label}, {"serial", r.serial}, {"slot", r.slot}});
  } else {
    std::cout << ctx.tr("Đã khởi tạo token «", "Initialized token «") << r.label << "»  serial "
              << r.serial << '\n';
  }
}

void cmd_change_pin(Context& ctx, const ProvisionOptions& o) {
  Provisioner p(module_path(ctx));
  apply_profile(p, o);
  if (o.so) {
    Secret old = read_pin(ctx, o.so_pin_file, "SO PIN hiện tại: ", "Current SO PIN: ");
    Secret fresh = read_new_pin(ctx, o.new_pin_file, "SO PIN mới: ", "New SO PIN: ");
    p.change_so_pin(o.token, old, fresh);
  } else {
    Secret old = read_pin(ctx, o.pin_file, "PIN hiện tại: ", "Current PIN: ");
    Secret fresh = read_new_pin(ctx, o.new_pin_file, "PIN mới: ", "New PIN: ");
    p.change_pin(o.token, old, fresh);
  }
  if (!ctx.json)
    std::cout << ctx.tr("Đã đổi PIN.\n", "PIN changed.\n");
  else
    Context::print_json({{"changed", true}});
}

void cmd_unblock(Context& ctx, const ProvisionOptions& o) {
  Provisioner p(module_path(ctx));
  apply_profile(p, o);
  Secret so = read_pin(ctx, o.so_pin_file, "SO PIN: ", "SO PIN: ");
  Secret fresh = read_new_pin(ctx, o.new_pin_file, "PIN người dùng mới: ", "New user PIN: ");
  p.unblock_pin(o.token, so, fresh);
  if (!ctx.json)
    std::cout << ctx.tr("Đã mở khóa và đặt PIN mới.\n", "PIN unblocked and set.\n");
  else
    Context::print_json({{"unblocked", true}});
}

void cmd_keygen(Context& ctx, const ProvisionOptions& o) {
  const auto alg = pkcs11::parse_key_algorithm(o.alg);
  if (!alg)
    throw Error(ErrorCode::AlgorithmUnsupported,
                "key algorithm " + o.alg + " (rsa2048, rsa3072, ec-p256)");
  Provisioner p(module_path(ctx));
  apply_profile(p, o);
  Secret pin = read_pin(ctx, o.pin_file, "Nhập mã PIN: ", "PIN: ");
  print_key(ctx, p.keygen(o.token, pin, *alg, o.key_label,
                          o.id_hex.empty() ? Bytes{} : from_hex(o.id_hex)));
}

void cmd_keys(Context& ctx, const ProvisionOptions& o) {
  Provisioner p(module_path(ctx));
  apply_profile(p, o);
  Secret pin = read_pin(ctx, o.pin_file, "Nhập mã PIN: ", "PIN: ");
  const auto keys = p.key_pairs(o.token, pin);
  if (ctx.json) {
    nlohmann::json arr = nlohmann::json::array();
    for (const auto& k : keys) {
      arr.push_back({{"id", to_hex(k.id)},
                     {"label", k.label},
                     {"type", k.key_type},
                     {"publicKey", to_base64(k.spki)}});
    }
    Context::print_json({{"keys", arr}});
    return;
  }
  for (const auto& k : keys) print_key(ctx, k);
}

void cmd_csr(Context& ctx, const ProvisionOptions& o) {
  const auto subject = firmware_config::parse_subject(o.subject);
  Provisioner p(module_path(ctx));
  apply_profile(p, o);
  Secret pin = read_pin(ctx, o.pin_file, "Nhập mã PIN: ", "PIN: ");
  const auto csr = p.make_csr(o.token, pin, o.key.empty() ? o.key_label : o.key, subject);
  if (o.out.empty() || o.out == "-") {
    std::cout << csr.pem;
  } else {
    std::ofstream(o.out, std::ios::binary) << csr.pem;
    std::cerr << ctx.tr("Đã ghi yêu cầu chứng thư (CSR) vào ", "Certificate request written to ")
              << o.out << '\n';
  }
}

void cmd_import(Context& ctx, const ProvisionOptions& o) {
  std::vector<Bytes> ders;
  for (const auto& f : o.certs) {
    for (const auto& c : x509_read_file(f)) ders.push_back(x509_to_der(c.get()));
  }
  Provisioner p(module_path(ctx));
  apply_profile(p, o);
  Secret pin = read_pin(ctx, o.pin_file, "Nhập mã PIN: ", "PIN: ");
  const auto r = p.import_certificate(o.token, pin, ders);
  if (ctx.json) {
    Context::print_json({{"keyId", to_hex(r.key.id)},
                         {"label", r.key.label},
                         {"certificateAdded", r.certificate_added},
                         {"chainAdded", r.chain_added}});
  } else {
    std::cout << (r.certificate_added
                      ? ctx.tr("Đã nạp chứng thư cho khóa ", "Imported the certificate for key ")
                      : ctx.tr("Chứng thư đã có sẵn cho khóa ",
                               "Certificate already present for key "))
              << to_hex(r.key.id) << " «" << r.key.label << "»; " << r.chain_added
              << ctx.tr(" chứng thư CA được thêm.\n", " CA certificate(s) added.\n");
  }
}

void cmd_batch(Context& ctx, const ProvisionOptions& o) {
  firmware_config::BatchOptions b;
  b.csv = o.csv;
  b.out_dir = o.out.empty() ? fs::path("provision-out") : fs::path(o.out);
  b.state_file = o.state;
  b.certs_dir = o.certs_dir;
  b.init_blank = !o.no_init;
  b.limit = o.limit;
  b.key_label = o.key_label;
  if (o.wait) {
    b.insert_token = [&ctx](const firmware_config::BatchRow& row) {
      std::string name;
      for (const auto& [k, v] : row.subject) {
        if (k == "CN") name = v;
      }
      std::cerr << '\n'
                << ctx.tr("Cắm token trắng (hoặc token «", "Plug in a blank token (or the token «")
                << row.label << "») " << ctx.tr("cho ", "for ") << name
                << ctx.tr(" rồi nhấn Enter; gõ q để dừng: ", ", then press Enter; q to stop: ")
                << std::flush;
      std::ifstream tty("/dev/tty");
      std::string answer;
      if (!std::getline(tty, answer)) return false;
      return answer != "q" && answer != "Q";
    };
  }
  for (const auto& [k, v] : {std::pair{"o", &o.org},
                             {"ou", &o.unit},
                             {"l", &o.locality},
                             {"st", &o.province},
                             {"title", &o.title}}) {
    if (!v->empty()) b.defaults.emplace_back(k, *v);
  }
  (void)firmware_config::read_batch_csv(b.csv,
                                        b.defaults);  // a broken CSV stops before any PIN prompt

  Provisioner p(module_path(ctx));
  apply_profile(p, o);
  Secret so = b.init_blank ? read_pin(ctx, o.so_pin_file,
                                      "SO PIN cho các token mới: ", "SO PIN for new tokens: ")
                           : Secret();
  Secret user =
      read_pin(ctx, o.pin_file,
               "PIN người dùng (ban đầu) cho các token: ", "Initial user PIN for the tokens: ");

  const bool tty = ::isatty(STDERR_FILENO) != 0;
  auto progress = [&](std::size_t i, std::size_t n, const firmware_config::BatchRowReport& r) {
    if (ctx.json) return;
    constexpr std::size_t kWidth = 30;
    const std::size_t filled = n == 0 ? kWidth : i * kWidth / n;
    std::string line = "[" + std::string(filled, '#') + std::string(kWidth - filled, '-') + "] " +
                       std::to_string(i) + "/" + std::to_string(n) + "  " + r.label + "  " +
                       r.status;
    if (!r.actions.empty()) {
      line += " (";
      for (std::size_t k = 0; k < r.actions.size(); ++k) line += (k ? "," : "") + r.actions[k];
      line += ")";
    }
    if (!r.error.empty()) line += ": " + r.error;
    std::cerr << (tty ? "\r\033[K" : "") << line
              << (tty && r.status != "failed" && i != n ? "" : "\n") << std::flush;
  };
  firmware_config::BatchReport rep;
  {
    const InterruptGuard interrupt;
    rep = firmware_config::run_batch(p, b, so, user, progress,
                                     [] { return InterruptGuard::requested(); });
  }
  if (tty && !ctx.json) std::cerr << '\n';

  nlohmann::json rows = nlohmann::json::array();
  for (const auto& r : rep.rows) {
    rows.push_back({{"row", r.index},
                    {"label", r.label},
                    {"status", r.status},
                    {"serial", r.serial},
                    {"keyId", r.key_id},
                    {"csr", r.csr},
                    {"certificate", r.certificate},
                    {"actions", r.actions},
                    {"error", r.error}});
  }
  const nlohmann::json summary{
      {"done", rep.done},       {"skipped", rep.skipped},         {"failed", rep.failed},
      {"pending", rep.pending}, {"interrupted", rep.interrupted}, {"rows", rows}};
  if (!o.report.empty()) std::ofstream(o.report) << summary.dump(2) << '\n';
  if (ctx.json) {
    Context::print_json(summary);
  } else {
    std::cout << ctx.tr("Xong: ", "Done: ") << rep.done
              << ctx.tr(", đã làm từ trước: ", ", done before: ") << rep.skipped
              << ctx.tr(", lỗi: ", ", failed: ") << rep.failed
              << ctx.tr(", còn lại: ", ", pending: ") << rep.pending << '\n';
    for (const auto& r : rep.rows) {
      if (r.status == "failed") std::cout << "  " << r.label << ": " << r.error << '\n';
    }
    if (rep.interrupted) {
      std::cout << ctx.tr("Đã dừng giữa chừng; chạy lại cùng lệnh để làm tiếp.\n",
                          "Stopped before the end; run the same command again to resume.\n");
    }
  }
  if (rep.failed > 0)
    throw Error(ErrorCode::TokenError, std::to_string(rep.failed) + " row(s) failed");
}

}  // namespace

void add_provision_commands(CLI::App& app, Context& ctx) {
  static ProvisionOptions o;
  auto* prov =
      app.add_subcommand("provision", "Chuẩn bị token cho giáo viên / prepare tokens (IT)");
  prov->require_subcommand(1);
  auto common = [&ctx](CLI::App* c, bool token) {
    if (token) c->add_option("--token", o.token, "Token label or serial")->required();
    c->add_option("--pin-file", o.pin_file,
                  "User PIN from this file (mode 600) instead of the terminal");
    c->add_flag("--json", ctx.json, "JSON output");
    c->add_option(
        "--token-model", o.model,
        "Token model (e.g. ePass2003): apply its profile's PIN policy and key algorithms");
    c->add_option("--profiles", o.profiles,
                  "Token profiles file (default: the built-in Vietnamese table)");
  };

  auto* init =
      prov->add_subcommand("init-token", "Khởi tạo token trắng / initialize a blank token");
  common(init, false);
  init->add_option("--label", o.label, "Token label (≤ 32 bytes)")->required();
  init->add_option("--so-pin-file", o.so_pin_file, "SO PIN from this file");
  init->add_option("--target", o.target,
                   "Token to initialize (label, serial or slot); default: the first blank one");
  init->add_flag("--force", o.force, "Allow erasing an initialized token given with --target");
  init->callback([&ctx] { cmd_init(ctx, o); });

  auto* change = prov->add_subcommand("change-pin", "Đổi PIN / change the user (or --so) PIN");
  common(change, true);
  change->add_flag("--so", o.so, "Change the SO PIN instead of the user PIN");
  change->add_option("--so-pin-file", o.so_pin_file, "Current SO PIN from this file (with --so)");
  change->add_option("--new-pin-file", o.new_pin_file, "New PIN from this file");
  change->callback([&ctx] { cmd_change_pin(ctx, o); });

  auto* unblock =
      prov->add_subcommand("unblock-pin", "Mở khóa PIN bằng SO PIN / unblock the user PIN");
  common(unblock, true);
  unblock->add_option("--so-pin-file", o.so_pin_file, "SO PIN from this file");
  unblock->add_option("--new-pin-file", o.new_pin_file, "New user PIN from this file");
  unblock->callback([&ctx] { cmd_unblock(ctx, o); });

  auto* keygen =
      prov->add_subcommand("keygen", "Sinh cặp khóa trên token / generate a key pair on the token");
  common(keygen, true);
  keygen->add_option("--alg", o.alg, "rsa2048 | rsa3072 | ec-p256")
      ->check(CLI::IsMember({"rsa2048", "rsa3072", "ec-p256"}));
  keygen->add_option("--label", o.key_label, "Label for the key pair (and later its certificate)");
  keygen->add_option("--id", o.id_hex, "CKA_ID in hex (default: 16 random bytes)");
  keygen->callback([&ctx] { cmd_keygen(ctx, o); });

  auto* keys = prov->add_subcommand("keys", "Liệt kê cặp khóa / list key pairs on the token");
  common(keys, true);
  keys->callback([&ctx] { cmd_keys(ctx, o); });

  auto* csr =
      prov->add_subcommand("csr", "Tạo yêu cầu chứng thư (PKCS#10) / make a certificate request");
  common(csr, true);
  csr->add_option("--key", o.key, "Key pair label or hex CKA_ID (default: kyso-sign)");
  csr->add_option("--subject", o.subject,
                  "\"C=VN, ST=HÀ NỘI, O=Trường X, title=Giáo viên, UID=CCCD:001185012345, "
                  "CN=Nguyễn Thị Ánh\"")
      ->required();
  csr->add_option("--out", o.out, "Write the PEM request here (default: stdout)");
  csr->callback([&ctx] { cmd_csr(ctx, o); });

  auto* imp = prov->add_subcommand(
      "import-cert", "Nạp chứng thư và chuỗi CA / import a certificate and its chain");
  common(imp, true);
  imp->add_option("--cert", o.certs,
                  "Certificate file(s), PEM or DER; CA certificates in them are the chain")
      ->required();
  imp->callback([&ctx] { cmd_import(ctx, o); });

  auto* batch = prov->add_subcommand(
      "batch", "Chuẩn bị token cho cả trường từ tệp CSV / a school's staff from a CSV");
  common(batch, false);
  batch->add_option("csv", o.csv, "staff.csv: label,cn,uid[,title,o,ou,l,st,c,email,key]")
      ->required();
  batch->add_option("--out", o.out,
                    "Directory for the CSRs and the state file (default: provision-out)");
  batch->add_option("--state", o.state, "State file (default: <out>/provision-state.json)");
  batch->add_option("--certs-dir", o.certs_dir, "Import <label>.crt found here onto each token");
  batch->add_option("--so-pin-file", o.so_pin_file, "SO PIN for tokens initialized by the batch");
  batch->add_option("--report", o.report, "Write the per-row report (JSON) here");
  batch->add_option("--limit", o.limit, "Stop after this many rows in this run (resume later)");
  batch->add_flag("--no-init", o.no_init,
                  "Never initialize blank tokens (tokens are already labelled)");
  batch->add_option("--key-label", o.key_label, "Label of the signing key pair on each token");
  batch->add_option("--o", o.org, "Default O (school) for rows without one");
  batch->add_option("--ou", o.unit, "Default OU");
  batch->add_option("--l", o.locality, "Default L (district)");
  batch->add_option("--st", o.province, "Default ST (province)");
  batch->add_option("--title", o.title, "Default title");
  batch->callback([&ctx] { cmd_batch(ctx, o); });
}

}  // namespace kyso::cli
