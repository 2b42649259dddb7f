// kyso prepare / kyso embed: two-phase signing for a transcript server (docs/server-signing.md).
// `prepare` turns files or folders into digests (JSON, ready as the SDK's hash batch items) and
// keeps one state file per document; `embed` takes the agent's batch summary back and writes
// the signed documents. Only digests and signatures travel; the documents stay on the server.

#include <filesystem>
#include <fstream>
#include <iostream>

#include "context.hpp"
#include "kyso/core/certificate.hpp"
#include "kyso/formats/prepare.hpp"

namespace kyso::cli {
namespace {

namespace fs = std::filesystem;

struct PrepareArgs {
  std::vector<std::string> paths;
  std::vector<std::string> certs;
  std::string key;
  std::string states;
  std::string out;
  std::string algorithm = "rsa-sha256";
  std::string element;
  std::string reference_id;
  std::string parent_id;
  std::string container;
  std::string level = "dsig";
  std::string reason;
  std::string location;
  std::string tsa;
  bool detached_cms = true;
};

struct EmbedArgs {
  std::string prepared;
  std::string signatures;
  std::string key;
  std::string out;
  std::string tsa;
  std::vector<std::string> trust;
};

Bytes read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(ErrorCode::BadRequest, "cannot read " + path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Written to a temporary file and renamed: a crash leaves the old file or the new one.
void write_file(const std::string& path, std::span<const std::uint8_t> data) {
  const std::string tmp = path + ".kyso-tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data.data()),
              static_cast<std::streamsize>(data.size()));
    if (!out) throw Error(ErrorCode::BadRequest, "cannot write " + tmp);
  }
  fs::rename(tmp, path);
}

std::string lower_ext(const fs::path& p) {
  std::string e = p.extension().string();
  for (auto& c : e) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return e;
}

// Files named, and in folders every .pdf/.xml (and, named one by one, any file: CMS) below
// them, in a stable order.
std::vector<std::string> expand(const std::vector<std::string>& paths) {
  std::vector<std::string> out;
  for (const auto& p : paths) {
    if (!fs::is_directory(p)) {
      out.push_back(p);
      continue;
    }
    std::vector<std::string> found;
    for (const auto& e : fs::recursive_directory_iterator(p)) {
      const std::string ext = lower_ext(e.path());
      if (e.is_regular_file() && (ext == ".pdf" || ext == ".xml"))
        found.push_back(e.path().string());
    }
    std::ranges::sort(found);
    out.insert(out.end(), found.begin(), found.end());
  }
  return out;
}

std::vector<Bytes> read_chain(const std::vector<std::string>& files) {
  std::vector<Bytes> chain;
  for (const auto& f : files) {
    for (const auto& x : x509_read_file(f)) chain.push_back(x509_to_der(x.get()));
  }
  if (chain.empty()) throw Error(ErrorCode::CertInvalid, "no certificate in --cert");
  return chain;
}

std::optional<formats::TsaConfig> tsa_config(const std::string& url,
                                             const std::vector<std::string>& trust) {
  if (url.empty()) return std::nullopt;
  formats::TsaConfig t;
  t.url = url;
  t.trusted_pem = trust.empty() ? default_trust_anchors() : trust;
  return t;
}

// A state's file name: the document's path below the folder it came from, flattened, so two
// folders' hb-01.pdf do not collide.
std::string state_name(std::size_t index, const std::string& file) {
  return std::to_string(index) + "-" + fs::path(file).filename().string() + ".kyso-state";
}

void cmd_prepare(Context& ctx, const PrepareArgs& a) {
  const auto alg = parse_sign_algorithm(a.algorithm);
  if (!alg) throw Error(ErrorCode::AlgorithmUnsupported, "unknown algorithm " + a.algorithm);
  const Credential signer = formats::signer_from_chain(read_chain(a.certs));
  const formats::StateKey key = formats::StateKey::load_or_create(a.key);
  fs::create_directories(a.states);
  const auto tsa = tsa_config(a.tsa, {});
  const std::string hash_name(to_string(hash_of(*alg)));

  nlohmann::json items = nlohmann::json::array();
  nlohmann::json failed = nlohmann::json::array();
  const std::vector<std::string> files = expand(a.paths);
  for (std::size_t i = 0; i < files.size(); ++i) {
    const std::string& f = files[i];
    try {
      const Bytes doc = read_file(f);
      const std::string ext = lower_ext(f);
      formats::Prepared p;
      if (ext == ".pdf") {
        formats::PdfSignOptions o;
        o.algorithm = *alg;
        o.reason = a.reason;
        o.location = a.location;
        o.tsa = tsa;
        p = formats::prepare_pdf(doc, signer, o, key);
      } else if (ext == ".xml") {
        formats::XmlSignOptions o;
        o.algorithm = *alg;
        o.reference_id = a.reference_id;
        if (o.reference_id.empty() && !a.element.empty()) {
          const auto ids =
              formats::XmlDocument::parse(doc).ids_of(a.element);  // the first such element
          if (ids.empty())
            throw Error(ErrorCode::BadRequest, "no <" + a.element + "> with an Id in " + f);
          o.reference_id = ids.front();
        }
        if (o.reference_id.empty())
          throw Error(ErrorCode::BadRequest, "XML needs --element or --reference-id");
        o.parent_id = a.parent_id;
        o.container = a.container;
        o.level = a.level == "xades-b"   ? formats::XmlLevel::XadesB
                  : a.level == "xades-t" ? formats::XmlLevel::XadesT
                                         : formats::XmlLevel::Dsig;
        o.tsa = tsa;
        p = formats::prepare_xml(doc, signer, o, key);
      } else {
        formats::CmsOptions o;
        o.algorithm = *alg;
        o.detached = a.detached_cms;
        o.tsa = tsa;
        p = formats::prepare_cms(doc, signer, o, key);
      }
      const std::string state = (fs::path(a.states) / state_name(i, f)).string();
      write_file(state, p.state);
      items.push_back({{"file", f},
                       {"format", std::string(formats::to_string(p.format))},
                       {"state", state},
                       {"item",
                        {{"type", "hash"},
                         {"hash", to_base64(p.digest)},
                         {"hashAlgorithm", hash_name},
                         {"title", fs::path(f).filename().string()}}}});
    } catch (const Error& e) {
      failed.push_back({{"file", f},
                        {"error",
                         {{"code", std::string(e.name())},
                          {"message", std::string(e.message(ctx.language()))},
                          {"detail", e.detail()}}}});
    }
  }
  const nlohmann::json out{{"version", 1},
                           {"algorithm", a.algorithm},
                           {"certificate", to_base64(signer.cert.der)},
                           {"items", items},
                           {"failed", failed}};
  if (a.out.empty() || a.out == "-") {
    Context::print_json(out);
  } else {
    const std::string text = out.dump(2) + "\n";
    write_file(a.out, {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()});
    std::cerr << items.size() << ctx.tr(" văn bản đã chuẩn bị, ", " document(s) prepared, ")
              << failed.size() << ctx.tr(" lỗi\n", " failed\n");
  }
  if (!failed.empty()) throw CLI::RuntimeError(2);
}

nlohmann::json read_json(const std::string& path) {
  const Bytes b = read_file(path);
  try {
    return nlohmann::json::parse(b.begin(), b.end());
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorCode::BadRequest, path + " is not JSON: " + e.what());
  }
}

void cmd_embed(Context& ctx, const EmbedArgs& a) {
  const formats::StateKey key = formats::StateKey::load_or_create(a.key);
  const nlohmann::json prepared = read_json(a.prepared);
  nlohmann::json summary = read_json(a.signatures);
  // The agent's batch summary as it is, or the SDK's answer wrapping it.
  if (summary.contains("result")) summary = summary["result"];
  const auto& items = prepared.at("items");
  const auto& results = summary.at("results");
  formats::EmbedOptions eo;
  if (summary.contains("certificate"))
    eo.signer_certificate = from_base64(summary["certificate"].get<std::string>());
  eo.tsa = tsa_config(a.tsa, a.trust);
  fs::create_directories(a.out);

  int embedded = 0;
  nlohmann::json report = nlohmann::json::array();
  for (std::size_t i = 0; i < items.size(); ++i) {
    const auto& item = items[i];
    const std::string file = item.at("file").get<std::string>();
    nlohmann::json r{{"index", i}, {"file", file}};
    try {
      const nlohmann::json* res = nullptr;
      for (const auto& x : results) {
        if (x.value("index", -1) == static_cast<int>(i)) res = &x;
      }
      if (res == nullptr || !res->value("ok", false) || !res->contains("signature")) {
        throw Error(
            ErrorCode::BadRequest,
            "the batch has no signature for item " + std::to_string(i) +
                (res != nullptr && res->contains("error") ? " (" + (*res)["error"].dump() + ")"
                                                          : std::string()));
      }
      const Bytes state = read_file(item.at("state").get<std::string>());
      const formats::Embedded e =
          formats::embed(state, from_base64((*res)["signature"].get<std::string>()), key, eo);
      std::string name = fs::path(file).filename().string();
      if (e.format == formats::PreparedFormat::Cms) name += ".p7s";
      const std::string out = (fs::path(a.out) / name).string();
      write_file(out, e.document);
      ++embedded;
      r["ok"] = true;
      r["output"] = out;
      if (!e.id.empty()) r["id"] = e.id;
    } catch (const Error& e) {
      r["ok"] = false;
      r["error"] = {{"code", std::string(e.name())},
                    {"message", std::string(e.message(ctx.language()))},
                    {"detail", e.detail()}};
    }
    report.push_back(r);
  }
  const auto failed = static_cast<int>(items.size()) - embedded;
  if (ctx.json) {
    Context::print_json({{"files", report}, {"embedded", embedded}, {"failed", failed}});
  } else {
    for (const auto& r : report) {
      if (r["ok"].get<bool>()) {
        std::cout << r["file"].get<std::string>() << " -> " << r["output"].get<std::string>()
                  << '\n';
      } else {
        std::cout << r["file"].get<std::string>() << ": " << ctx.tr("LỖI", "ERROR") << " ["
                  << r["error"]["code"].get<std::string>()
                  << "]: " << r["error"]["message"].get<std::string>() << "\n  ("
                  << r["error"]["detail"].get<std::string>() << ")\n";
      }
    }
    std::cout << ctx.tr("Tổng: ", "Total: ") << items.size()
              << ctx.tr(" văn bản, ", " document(s), ") << embedded
              << ctx.tr(" đã gắn chữ ký, ", " signed, ") << failed << ctx.tr(" lỗi", " failed")
              << '\n';
  }
  if (failed > 0) throw CLI::RuntimeError(2);
}

}  // namespace

void add_prepare_embed(CLI::App& app, Context& ctx) {
  static PrepareArgs pa;
  auto* p = app.add_subcommand(
      "prepare",
      "Chuẩn bị văn bản để ký ở nơi khác, xuất mã băm / prepare documents, output their digests");
  p->add_option("paths", pa.paths, "Documents (.pdf, .xml; any other file: CMS) or folders of them")
      ->required()
      ->check(CLI::ExistingPath);
  p->add_option("--cert", pa.certs,
                "The signer's certificate, then its issuers (PEM or DER files; repeatable)")
      ->required()
      ->check(CLI::ExistingFile);
  p->add_option("--state-key", pa.key,
                "HMAC key file protecting the states (made, mode 600, when missing); embed needs "
                "the same file")
      ->required();
  p->add_option("--states", pa.states, "Folder for the state files (one per document)")->required();
  p->add_option("-o,--out", pa.out, "Write the digests JSON here (default: standard output)");
  p->add_option("--alg", pa.algorithm,
                "rsa-sha256 (default), rsa-pss-sha256, ecdsa-sha256, … (the agent must sign "
                "with the same)");
  p->add_option("--element", pa.element,
                "XML: sign the first element of this name with an Id (e.g. DuLieuHocBa)");
  p->add_option("--reference-id", pa.reference_id, "XML: sign the element with this Id");
  p->add_option("--parent-id", pa.parent_id,
                "XML: put the Signature into the element with this Id (default: the signed one)");
  p->add_option("--container", pa.container,
                "XML: an element of this name holds the Signature (e.g. ChuKyHieuTruong)");
  p->add_option("--level", pa.level, "XML: dsig (default), xades-b or xades-t")
      ->check(CLI::IsMember({"dsig", "xades-b", "xades-t"}));
  p->add_option("--reason", pa.reason, "PDF: /Reason, e.g. \"Phê duyệt học bạ\"");
  p->add_option("--location", pa.location, "PDF: /Location, e.g. \"Hà Nội\"");
  p->add_option("--tsa", pa.tsa,
                "Make B-T signatures: the timestamp is fetched at embed (give embed --tsa too)");
  p->callback([&ctx] { cmd_prepare(ctx, pa); });

  static EmbedArgs ea;
  auto* e = app.add_subcommand(
      "embed",
      "Gắn chữ ký nhận về vào văn bản đã chuẩn bị / embed returned signatures into prepared "
      "documents");
  e->add_option("--prepared", ea.prepared, "The JSON written by kyso prepare")
      ->required()
      ->check(CLI::ExistingFile);
  e->add_option("--signatures", ea.signatures,
                "The agent's batch.sign summary (or the SDK's answer) for those items, in order")
      ->required()
      ->check(CLI::ExistingFile);
  e->add_option("--state-key", ea.key, "The HMAC key file given to kyso prepare")
      ->required()
      ->check(CLI::ExistingFile);
  e->add_option("--out", ea.out, "Folder for the signed documents")->required();
  e->add_option("--tsa", ea.tsa, "RFC 3161 TSA URL for states prepared with --tsa");
  e->add_option("--trust", ea.trust,
                "Trust anchors for the TSA's certificate (repeatable; default /etc/kyso/trust)");
  e->add_flag("--json", ctx.json, "JSON output");
  e->callback([&ctx] { cmd_embed(ctx, ea); });
}

}  // namespace kyso::cli
