// kyso sign: a principal or IT signs a folder (or a list) of PDF and XML transcripts from the
// command line with a token: one approval and one PIN for the whole run, a progress bar on a
// terminal, a summary of exactly what was signed, resumable after an interruption.
//
// Resuming rests on two facts. An output appears under its final name only complete and signed
// (formats writes a temporary file and renames it), so an interrupted run leaves either nothing
// or a signed file. And an output that exists is checked before anything is signed: when it
// verifies and carries a signature of this very certificate (for a PDF, over this input's bytes)
// it is skipped, so a re-run signs only what is missing and no document is signed twice.

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>

#include "context.hpp"
#include "kyso/core/roles.hpp"
#include "kyso/formats/cert_check.hpp"
#include "kyso/formats/pdf.hpp"
#include "kyso/formats/verify.hpp"
#include "kyso/formats/xml.hpp"

namespace kyso::cli {
namespace {

namespace fs = std::filesystem;

/// Exit statuses (kyso sign --help, README, docs/formats.md).
constexpr int kExitFailed = 2;         // some documents failed; the others were signed
constexpr int kExitInterrupted = 130;  // SIGINT: what was signed is kept; run again to resume

struct SignArgs {
  std::vector<std::string> paths;
  std::string role;
  std::string credential;
  std::string profile = "dsig";
  std::string out = "signed";
  std::string alg;
  std::string pin_file;
  std::string tsa;
  std::vector<std::string> trust;
  bool no_revocation = false;
  bool yes = false;
  // XML placement; empty: the role's default (see role_placement)
  std::string element;
  std::string parent_element;
  std::string container;
  // PDF
  std::string reason;
  std::string location;
};

enum class Kind { Pdf, Xml, Other };

struct Job {
  std::string input;
  std::string output;
  Kind kind = Kind::Other;
};

std::string lower_ext(const fs::path& p) {
  std::string e = p.extension().string();
  for (auto& c : e) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return e;
}

Kind kind_of(const fs::path& p) {
  const std::string e = lower_ext(p);
  return e == ".pdf" ? Kind::Pdf : e == ".xml" ? Kind::Xml : Kind::Other;
}

bool is_under(const fs::path& p, const fs::path& dir) {
  const auto rel = p.lexically_relative(dir);
  return !rel.empty() && *rel.begin() != "..";
}

// Files named go to OUT/<name>; a folder's .pdf/.xml files (recursively, the output folder
// excluded) to OUT/<path below the folder>. Sorted, so runs and their summaries line up.
std::vector<Job> plan(const std::vector<std::string>& paths, const fs::path& out) {
  const fs::path out_abs = fs::weakly_canonical(out);
  std::vector<Job> jobs;
  for (const auto& p : paths) {
    if (!fs::is_directory(p)) {
      jobs.push_back({p, (out / fs::path(p).filename()).string(), kind_of(p)});
      continue;
    }
    std::vector<Job> found;
    const fs::path root = fs::weakly_canonical(p);
    for (auto it = fs::recursive_directory_iterator(p); it != fs::recursive_directory_iterator();
         ++it) {
      const fs::path abs = fs::weakly_canonical(it->path());
      if (it->is_directory() && (abs == out_abs || is_under(abs, out_abs))) {
        it.disable_recursion_pending();
        continue;
      }
      const Kind k = kind_of(it->path());
      if (!it->is_regular_file() || k == Kind::Other) continue;
      found.push_back({it->path().string(), (out / abs.lexically_relative(root)).string(), k});
    }
    std::ranges::sort(found, {}, &Job::input);
    jobs.insert(jobs.end(), found.begin(), found.end());
  }
  return jobs;
}

// Where a role's XML signature goes, as the demo transcripts have it (docs/protocol.md,
// "Document items"): the teacher signs the data element inside it, the principal signs it too
// from beside it, the seal signs the whole transcript, each in its own container.
struct Placement {
  std::string element, parent, container;
};
Placement role_placement(Role role, const SignArgs& a) {
  Placement p;
  switch (role) {
    case Role::Teacher:
      p = {"DuLieuHocBa", "", "ChuKyGVCN"};
      break;
    case Role::Principal:
      p = {"DuLieuHocBa", "HocBa", "ChuKyHieuTruong"};
      break;
    case Role::Seal:
      p = {"HocBa", "HocBa", "ConDau"};
      break;
  }
  if (!a.element.empty()) p.element = a.element;
  if (!a.parent_element.empty()) p.parent = a.parent_element;
  if (!a.container.empty()) p.container = a.container;
  return p;
}

std::string pdf_reason(Role role) {
  switch (role) {
    case Role::Teacher:
      return "Giáo viên chủ nhiệm ký học bạ";
    case Role::Principal:
      return "Hiệu trưởng phê duyệt học bạ";
    case Role::Seal:
      return "Đóng dấu phát hành học bạ";
  }
  return {};
}

bool starts_with_file(const std::string& path, const std::string& prefix_path) {
  std::ifstream a(path, std::ios::binary);
  std::ifstream b(prefix_path, std::ios::binary);
  if (!a || !b) return false;
  std::vector<char> x(1U << 16U);
  std::vector<char> y(1U << 16U);
  for (;;) {
    b.read(y.data(), static_cast<std::streamsize>(y.size()));
    const auto n = b.gcount();
    if (n == 0) return true;
    a.read(x.data(), n);
    if (a.gcount() != n || !std::equal(y.begin(), y.begin() + n, x.begin())) return false;
  }
}

// Whether `file` holds an intact signature made with `cert_id`'s certificate.
bool signed_by(const std::string& file, const std::string& cert_id) {
  formats::VerifyOptions vo;
  vo.check_revocation = false;  // integrity and signer only; nothing fetched
  try {
    const auto report = formats::verify_file(file, vo);
    return std::ranges::any_of(report.signatures, [&](const formats::SignatureReport& s) {
      return s.integrity && s.signer && s.signer->id == cert_id;
    });
  } catch (const Error&) {
    return false;
  }
}

enum class Status { Pending, Signed, SkippedEarlier, SkippedInput, Failed, NotDone };

struct Outcome {
  Status status = Status::Pending;
  std::optional<Error> error;
};

// What a run found out about a job before signing anything: done earlier, already signed by
// this certificate at the input, a foreign file in the way, or to be signed.
Outcome survey(const Job& j, const std::string& cert_id) {
  if (j.kind == Kind::Other) {
    return {Status::Failed, Error(ErrorCode::NotSupported, "kyso sign signs .pdf and .xml files")};
  }
  std::error_code ec;
  if (fs::exists(j.output, ec)) {
    if (fs::equivalent(j.input, j.output, ec)) {
      return {Status::Failed,
              Error(ErrorCode::BadRequest, "the output would replace its input; choose --out")};
    }
    const bool same_document = j.kind != Kind::Pdf || starts_with_file(j.output, j.input);
    if (same_document && signed_by(j.output, cert_id)) return {Status::SkippedEarlier, {}};
    return {Status::Failed, Error(ErrorCode::OutputExists, j.output)};
  }
  if (signed_by(j.input, cert_id)) return {Status::SkippedInput, {}};
  return {};
}

/// One writer per output folder: a second `kyso sign` into it would sign the same documents.
class FolderLock {
 public:
  explicit FolderLock(const fs::path& dir) {
    const std::string path = (dir / ".kyso-sign.lock").string();
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd_ < 0) throw Error(ErrorCode::BadRequest, "cannot open " + path);
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      ::close(fd_);
      throw Error(ErrorCode::Busy, "another kyso sign is writing to " + dir.string());
    }
  }
  ~FolderLock() { ::close(fd_); }  // releases the lock
  FolderLock(const FolderLock&) = delete;
  FolderLock& operator=(const FolderLock&) = delete;
  FolderLock(FolderLock&&) = delete;
  FolderLock& operator=(FolderLock&&) = delete;

 private:
  int fd_ = -1;
};

/// A progress bar on a terminal, a plain line per document otherwise.
class Progress {
 public:
  Progress(const Context& ctx, std::size_t total)
      : ctx_(ctx), total_(total), bar_(::isatty(STDOUT_FILENO) == 1 && !ctx.json) {}
  void step(const Job& j, const Outcome& o) {
    ++done_;
    if (ctx_.json) return;
    if (bar_) {
      constexpr std::size_t kWidth = 30;
      const std::size_t filled = total_ == 0 ? kWidth : done_ * kWidth / total_;
      std::cout << "\r[" << std::string(filled, '#') << std::string(kWidth - filled, '.') << "] "
                << done_ << '/' << total_ << "  " << fs::path(j.input).filename().string()
                << "\033[K" << std::flush;
      return;
    }
    if (o.status == Status::Signed) {
      std::cout << ctx_.tr("đã ký ", "signed ") << done_ << '/' << total_ << ' ' << j.input
                << " -> " << j.output << '\n';
    } else {
      std::cout << ctx_.tr("LỖI ", "FAILED ") << done_ << '/' << total_ << ' ' << j.input << " ["
                << o.error->name() << "]\n";
    }
  }
  void finish() const {
    if (bar_ && done_ > 0) std::cout << '\n';
  }

 private:
  const Context& ctx_;
  std::size_t total_;
  std::size_t done_ = 0;
  bool bar_;
};

void sign_one(Signer& signer, const Job& j, Role role, const SignArgs& a, SignAlgorithm alg,
              const std::optional<formats::TsaConfig>& tsa) {
  std::error_code ec;
  fs::create_directories(fs::path(j.output).parent_path(), ec);
  if (ec) throw Error(ErrorCode::BadRequest, "cannot create the folder of " + j.output);
  if (j.kind == Kind::Pdf) {
    formats::PdfSignOptions o;
    o.algorithm = alg;
    o.reason = a.reason.empty() ? pdf_reason(role) : a.reason;
    o.location = a.location;
    o.tsa = tsa;
    // File to file through a temporary file renamed into place (formats/src/pdf.cpp).
    formats::sign_pdf(signer, j.input, j.output, o);
    return;
  }
  auto doc = formats::XmlDocument::load(j.input);
  const Placement p = role_placement(role, a);
  formats::XmlSignOptions o;
  o.algorithm = alg;
  const auto refs = doc.ids_of(p.element);
  if (refs.empty()) {
    throw Error(ErrorCode::DocumentInvalid, "no <" + p.element + "> with an Id in " + j.input);
  }
  o.reference_id = refs.front();
  if (!p.parent.empty()) {
    const auto parents = doc.ids_of(p.parent);
    if (parents.empty()) {
      throw Error(ErrorCode::DocumentInvalid, "no <" + p.parent + "> with an Id in " + j.input);
    }
    o.parent_id = parents.front();
  }
  o.container = p.container;
  o.level = a.profile == "b-b"   ? formats::XmlLevel::XadesB
            : a.profile == "b-t" ? formats::XmlLevel::XadesT
                                 : formats::XmlLevel::Dsig;
  o.tsa = tsa;
  doc.sign(signer, o);
  doc.save(j.output);  // a temporary file renamed into place
}

nlohmann::json error_json(const Context& ctx, const Error& e) {
  return {{"code", std::string(e.name())},
          {"message", std::string(e.message(ctx.language()))},
          {"detail", e.detail()}};
}

int cmd_sign(Context& ctx, const SignArgs& a) {
  const Role role = *parse_role(a.role);
  if (a.profile == "b-t" && a.tsa.empty()) {
    throw Error(ErrorCode::TsaNotConfigured, "--profile b-t needs --tsa URL");
  }
  const fs::path out = a.out;
  fs::create_directories(out);
  const FolderLock lock(out);

  std::shared_ptr<Signer> signer =
      ctx.library().signer(a.credential.empty() ? credential_for_role(ctx, a.role)
                                                : resolve_credential(ctx, a.credential));
  const Credential cred = signer->credential();
  if (!role_accepts(role, cred.cert)) {
    throw Error(ErrorCode::RoleMismatch, cred.cert.common_name + " cannot sign as " + a.role);
  }
  SignAlgorithm alg = default_algorithm(cred.cert, HashAlgorithm::Sha256);
  if (!a.alg.empty()) {
    const auto parsed = parse_sign_algorithm(a.alg);
    if (!parsed) throw Error(ErrorCode::AlgorithmUnsupported, "unknown algorithm " + a.alg);
    alg = *parsed;
  }
  // The checks before signing (validity, key usage, chain, revocation), once for the run, when
  // trust anchors are configured; a certificate the checks refuse never reaches the token.
  const std::vector<std::string> anchors = a.trust.empty() ? default_trust_anchors() : a.trust;
  if (!anchors.empty()) {
    formats::TrustConfig tc;
    tc.anchors = anchors;
    tc.check_revocation = !a.no_revocation;
    signer = std::make_shared<formats::CheckedSigner>(
        signer, std::make_shared<formats::CertificateChecker>(std::move(tc)));
  } else if (!cred.cert.valid_at(std::chrono::system_clock::now())) {
    throw Error(ErrorCode::CertExpired, cred.cert.common_name);
  }
  std::optional<formats::TsaConfig> tsa;
  if (!a.tsa.empty()) tsa = formats::TsaConfig{.url = a.tsa, .trusted_pem = anchors};

  const std::vector<Job> jobs = plan(a.paths, out);
  std::vector<Outcome> outcomes(jobs.size());
  std::vector<std::size_t> todo;
  std::map<std::string, std::size_t> by_output;
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    if (auto [it, fresh] = by_output.emplace(jobs[i].output, i); !fresh) {
      outcomes[i] = {Status::Failed, Error(ErrorCode::BadRequest,
                                           jobs[it->second].input + " writes the same output")};
      continue;
    }
    outcomes[i] = survey(jobs[i], cred.id());
    if (outcomes[i].status == Status::Pending) todo.push_back(i);
  }

  // The plan, then the one approval: typing the PIN (or answering y) for all of it.
  const auto count = [&](Status s) {
    return std::ranges::count_if(outcomes, [&](const Outcome& o) { return o.status == s; });
  };
  const std::string who = cred.cert.common_name + " (" +
                          std::string(role_label(role, ctx.language())) + ", token «" +
                          cred.source.name + "»)";
  if (!ctx.json) {
    std::cout << ctx.tr("Ký ", "Signing ") << todo.size()
              << ctx.tr(" văn bản bằng ", " document(s) as ") << who
              << ctx.tr(", ghi vào ", " into ") << out.string() << '\n';
    const auto earlier = count(Status::SkippedEarlier) + count(Status::SkippedInput);
    if (earlier > 0) {
      std::cout << "  " << earlier
                << ctx.tr(" văn bản đã ký trước đó được bỏ qua\n",
                          " document(s) signed before are skipped\n");
    }
  }
  if (!todo.empty()) {
    if (signer->auth_required() == AuthKind::None ||
        signer->auth_required() == AuthKind::ProtectedPath) {
      if (!a.yes && ::isatty(STDIN_FILENO) == 1) {
        std::cerr << ctx.tr("Đồng ý ký? [c/K] ", "Sign them? [y/N] ") << std::flush;
        std::string answer;
        std::getline(std::cin, answer);
        if (answer != "y" && answer != "Y" && answer != "c" && answer != "C") {
          throw Error(ErrorCode::UserCancelled, "not approved");
        }
      }
    }
    authorize_once(ctx, *signer, a.pin_file,
                   std::string(ctx.tr("Nhập PIN để đồng ý ký ", "PIN to approve signing ")) +
                       std::to_string(todo.size()) +
                       ctx.tr(" văn bản (token «", " document(s) (token «") + cred.source.name +
                       "»): ");
  }

  // Ctrl+C: the document being signed is finished and written, then the run stops; a second
  // Ctrl+C ends it at once (outputs are still whole: they are renamed into place).
  auto interrupt = std::make_optional<InterruptGuard>();
  Progress progress(ctx, todo.size());
  std::optional<Error> stopped;  // an error after which nothing more can be signed
  for (const std::size_t i : todo) {
    if (InterruptGuard::requested() || stopped) {
      outcomes[i] = {Status::NotDone, stopped};
      continue;
    }
    try {
      sign_one(*signer, jobs[i], role, a, alg, tsa);
      outcomes[i] = {Status::Signed, {}};
    } catch (const Error& e) {
      outcomes[i] = {Status::Failed, e};
      if (stops_batch(e.code())) stopped = e;
    } catch (const std::exception& e) {  // the file system (a full disk, permissions)
      outcomes[i] = {Status::Failed, Error(ErrorCode::Internal, e.what())};
    }
    progress.step(jobs[i], outcomes[i]);
  }
  progress.finish();
  const bool interrupted = InterruptGuard::requested();
  interrupt.reset();

  // The summary: exactly what was signed, skipped, failed (with its code) and left to do.
  nlohmann::json signed_ = nlohmann::json::array();
  nlohmann::json skipped = nlohmann::json::array();
  nlohmann::json failed = nlohmann::json::array();
  nlohmann::json not_done = nlohmann::json::array();
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    const auto& j = jobs[i];
    const auto& o = outcomes[i];
    switch (o.status) {
      case Status::Signed:
        signed_.push_back({{"file", j.input}, {"output", j.output}});
        break;
      case Status::SkippedEarlier:
        skipped.push_back({{"file", j.input}, {"output", j.output}, {"reason", "signed-earlier"}});
        break;
      case Status::SkippedInput:
        skipped.push_back({{"file", j.input}, {"reason", "input-already-signed"}});
        break;
      case Status::Failed:
        failed.push_back({{"file", j.input}, {"error", error_json(ctx, *o.error)}});
        break;
      case Status::NotDone:
      case Status::Pending: {
        nlohmann::json n{{"file", j.input}};
        if (o.error) n["error"] = error_json(ctx, *o.error);
        not_done.push_back(std::move(n));
        break;
      }
    }
  }
  if (ctx.json) {
    Context::print_json({{"credential", cred.id()},
                         {"role", a.role},
                         {"out", out.string()},
                         {"signed", signed_},
                         {"skipped", skipped},
                         {"failed", failed},
                         {"notDone", not_done},
                         {"interrupted", interrupted}});
  } else {
    if (::isatty(STDOUT_FILENO) == 1) {
      for (const auto& s : signed_) {
        std::cout << ctx.tr("đã ký ", "signed ") << s["file"].get<std::string>() << " -> "
                  << s["output"].get<std::string>() << '\n';
      }
    }
    for (const auto& f : failed) {
      std::cout << f["file"].get<std::string>() << ": " << ctx.tr("LỖI", "ERROR") << " ["
                << f["error"]["code"].get<std::string>()
                << "]: " << f["error"]["message"].get<std::string>() << "\n  ("
                << f["error"]["detail"].get<std::string>() << ")\n";
    }
    std::cout << ctx.tr("Tổng: ", "Total: ") << jobs.size()
              << ctx.tr(" văn bản, ", " document(s), ") << signed_.size()
              << ctx.tr(" đã ký, ", " signed, ") << skipped.size()
              << ctx.tr(" đã ký trước đó, ", " signed before, ") << failed.size()
              << ctx.tr(" lỗi, ", " failed, ") << not_done.size()
              << ctx.tr(" chưa ký", " not signed") << '\n';
    if (interrupted) {
      std::cout << ctx.tr(
          "Đã dừng theo yêu cầu (Ctrl+C). Chạy lại đúng lệnh này để ký tiếp; "
          "văn bản đã ký sẽ được bỏ qua.\n",
          "Stopped on request (Ctrl+C). Run the same command again to go on; "
          "documents already signed are skipped.\n");
    }
  }
  if (interrupted) return kExitInterrupted;
  return failed.empty() && not_done.empty() ? 0 : kExitFailed;
}

}  // namespace

void add_sign_command(CLI::App& app, Context& ctx) {
  static SignArgs sa;
  auto* s = app.add_subcommand(
      "sign",
      "Ký các tệp PDF/XML (hoặc cả thư mục) bằng token / sign PDF and XML files or folders with "
      "a token");
  s->footer(
      "One approval and one PIN for the whole run. Outputs go to --out (a folder's files keep "
      "their path below it); each appears only complete and signed. Run the same command again "
      "after an interruption: outputs that exist and carry a valid signature of this "
      "certificate are skipped, so no document is signed twice.\n"
      "Exit status: 0 every document signed or signed before; 1 nothing signed (an error "
      "before signing: no credential, wrong PIN, ...); 2 some documents failed or were not "
      "signed (listed with their codes), the others are signed; 130 interrupted (SIGINT): what "
      "was signed is kept, run again to go on.");
  s->add_option("paths", sa.paths, "PDF and XML files, or folders of them (searched recursively)")
      ->required()
      ->check(CLI::ExistingPath);
  s->add_option("--role", sa.role, "principal | teacher | seal")
      ->required()
      ->check(CLI::IsMember({"teacher", "principal", "seal"}));
  s->add_option("--credential", sa.credential,
                "Credential id or unique prefix (default: the valid one that fits the role)");
  s->add_option("--profile", sa.profile,
                "dsig (default: XML-DSig in the Vietnamese transcript profile, PAdES B-B) | b-b "
                "(XAdES B-B, PAdES B-B) | b-t (XAdES B-T, PAdES B-T; needs --tsa)")
      ->check(CLI::IsMember({"dsig", "b-b", "b-t"}));
  s->add_option("--out", sa.out, "Folder for the signed files (default: ./signed)");
  s->add_option("--alg", sa.alg,
                "rsa-sha256 | rsa-pss-sha256 | ecdsa-sha256 | … (default: rsa-sha256, or "
                "ecdsa-sha256 for an EC key)");
  s->add_option("--pin-file", sa.pin_file,
                "Read the PIN from this file (mode 600) instead of the terminal");
  s->add_option("--tsa", sa.tsa, "RFC 3161 timestamp service URL (for --profile b-t)");
  s->add_option("--trust", sa.trust,
                "Trust anchors for the checks before signing (repeatable; default "
                "/etc/kyso/trust/*.pem|*.crt; none: validity only)");
  s->add_flag("--no-revocation", sa.no_revocation,
              "Skip the OCSP/CRL check before signing (offline)");
  s->add_flag("-y,--yes", sa.yes, "Do not ask for approval when the token needs no PIN (scripts)");
  s->add_option("--element", sa.element,
                "XML: sign the first element of this name with an Id (default by role: "
                "DuLieuHocBa; seal: HocBa)");
  s->add_option("--parent-element", sa.parent_element,
                "XML: the Signature's container goes into the first element of this name with "
                "an Id (default: teacher inside the signed element; principal, seal: HocBa)");
  s->add_option("--container", sa.container,
                "XML: the element holding the Signature (default by role: ChuKyGVCN, "
                "ChuKyHieuTruong, ConDau)");
  s->add_option("--reason", sa.reason,
                "PDF: /Reason (default by role, e.g. \"Hiệu trưởng phê duyệt học bạ\")");
  s->add_option("--location", sa.location, "PDF: /Location, e.g. \"Hà Nội\"");
  s->add_flag("--json", ctx.json, "JSON summary");
  s->callback([&ctx] {
    int rc = 0;
    try {
      rc = cmd_sign(ctx, sa);
    } catch (const fs::filesystem_error& e) {  // the inputs or --out cannot be read or made
      throw Error(ErrorCode::BadRequest, e.what());
    }
    if (rc != 0) throw CLI::RuntimeError(rc);
  });
}

}  // namespace kyso::cli
