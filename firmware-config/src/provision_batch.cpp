// `kyso provision batch`: a school's staff from a CSV, one token per row, resumable.

#include <algorithm>
#include <cctype>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "kyso/core/text.hpp"
#include "kyso/firmware_config/provision.hpp"

namespace kyso::firmware_config {
namespace {

namespace fs = std::filesystem;

struct Interrupted {};  // the person asked to stop while a row waited for its token

[[noreturn]] void csv_fail(const fs::path& csv, std::size_t line, const std::string& what) {
  throw Error(ErrorCode::BadRequest, csv.string() + ":" + std::to_string(line) + ": " + what);
}

// RFC 4180 records: quoted fields may hold commas, quotes ("") and line breaks.
std::vector<std::pair<std::size_t, std::vector<std::string>>> parse_csv(const fs::path& csv) {
  std::ifstream in(csv, std::ios::binary);
  if (!in) throw Error(ErrorCode::BadRequest, csv.string() + ": cannot open the CSV file");
  std::ostringstream buf;
  buf << in.rdbuf();
  std::string text = buf.str();
  if (text.starts_with("\xEF\xBB\xBF")) text.erase(0, 3);  // Excel's UTF-8 BOM

  std::vector<std::pair<std::size_t, std::vector<std::string>>> records;
  std::vector<std::string> fields;
  std::string field;
  bool quoted = false;
  bool any = false;
  std::size_t line = 1;
  std::size_t record_line = 1;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quoted) {
      if (c == '"' && i + 1 < text.size() && text[i + 1] == '"') {
        field += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        if (c == '\n') ++line;
        field += c;
      }
      continue;
    }
    if (c == '"' && field.empty()) {
      quoted = any = true;
    } else if (c == ',') {
      fields.push_back(std::move(field));
      field.clear();
      any = true;
    } else if (c == '\n' || c == '\r') {
      if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
      if (any || !field.empty()) {
        fields.push_back(std::move(field));
        records.emplace_back(record_line, std::move(fields));
      }
      fields.clear();
      field.clear();
      any = false;
      record_line = ++line;
    } else {
      field += c;
      any = true;
    }
  }
  if (quoted) csv_fail(csv, record_line, "unterminated quoted field");
  if (any || !field.empty()) {
    fields.push_back(std::move(field));
    records.emplace_back(record_line, std::move(fields));
  }
  return records;
}

// A label as a file name: anything outside [A-Za-z0-9._-] becomes '_'.
std::string file_stem(const std::string& label) {
  std::string s = label;
  for (char& c : s) {
    const bool ok =
        std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '.' || c == '_' || c == '-';
    if (!ok || (c == '.' && &c == &s.front())) c = '_';
  }
  return s;
}

void write_atomically(const fs::path& path, const std::string& text) {
  const fs::path tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
    out.flush();
    if (!out) throw Error(ErrorCode::Internal, "cannot write " + tmp.string());
  }
  fs::rename(tmp, path);
}

nlohmann::json load_state(const fs::path& file) {
  std::ifstream in(file);
  if (!in) return {{"version", 1}, {"rows", nlohmann::json::object()}};
  try {
    nlohmann::json j = nlohmann::json::parse(in);
    if (!j.contains("rows") || !j["rows"].is_object()) throw std::runtime_error("no rows");
    return j;
  } catch (const std::exception& e) {
    throw Error(ErrorCode::ConfigInvalid, file.string() + ": state file unreadable (" + e.what() +
                                              "); move it away to start over");
  }
}

}  // namespace

std::vector<BatchRow> read_batch_csv(
    const fs::path& csv, const std::vector<std::pair<std::string, std::string>>& defaults) {
  const auto records = parse_csv(csv);
  if (records.empty()) csv_fail(csv, 1, "empty file: a header row (label,cn,uid,...) is required");
  static const std::vector<std::string> known{"label", "cn", "uid", "title", "o",  "ou",
                                              "l",     "st", "c",   "email", "key"};
  std::map<std::string, std::size_t> col;
  const auto& header = records.front().second;
  for (std::size_t i = 0; i < header.size(); ++i) {
    std::string name = ascii_lower(header[i]);
    name.erase(0, name.find_first_not_of(' '));
    name.erase(name.find_last_not_of(' ') + 1);
    if (std::ranges::find(known, name) == known.end()) {
      csv_fail(csv, 1,
               "unknown column '" + header[i] +
                   "' (known: label, cn, uid, title, o, ou, l, st, c, email, key)");
    }
    if (col.contains(name)) csv_fail(csv, 1, "column '" + name + "' appears twice");
    col[name] = i;
  }
  for (const char* required : {"label", "cn", "uid"}) {
    if (!col.contains(required)) csv_fail(csv, 1, std::string("missing column '") + required + "'");
  }
  std::map<std::string, std::string> fallback;
  for (const auto& [k, v] : defaults) fallback[ascii_lower(k)] = v;
  if (!fallback.contains("c")) fallback["c"] = "VN";

  std::vector<BatchRow> rows;
  for (std::size_t r = 1; r < records.size(); ++r) {
    // Not a structured binding: the lambda below uses them (clang 15 cannot capture bindings).
    const std::size_t line = records[r].first;
    const std::vector<std::string>& fields = records[r].second;
    if (fields.size() != header.size()) {
      csv_fail(csv, line,
               std::to_string(fields.size()) + " fields, the header has " +
                   std::to_string(header.size()));
    }
    auto get = [&](const std::string& name) -> std::string {
      std::string v;
      if (auto it = col.find(name); it != col.end()) v = fields[it->second];
      v.erase(0, v.find_first_not_of(' '));
      v.erase(v.find_last_not_of(' ') + 1);
      if (v.empty()) {
        if (auto f = fallback.find(name); f != fallback.end()) v = f->second;
      }
      return v;
    };
    BatchRow row;
    row.line = line;
    row.label = get("label");
    if (row.label.empty() || row.label.size() > 32)
      csv_fail(csv, line, "label must be 1..32 bytes");
    for (const auto& other : rows) {
      if (other.label == row.label) {
        csv_fail(csv, line,
                 "label '" + row.label + "' already used on line " + std::to_string(other.line));
      }
    }
    // Certificate order as Vietnamese CAs issue it: C, ST, L, O, OU, title, UID..., CN.
    Subject s;
    for (const char* attr : {"c", "st", "l", "o", "ou", "title"}) {
      if (auto v = get(attr); !v.empty()) {
        const std::string name = std::string(attr) == "c"    ? "C"
                                 : std::string(attr) == "st" ? "ST"
                                 : std::string(attr) == "l"  ? "L"
                                 : std::string(attr) == "o"  ? "O"
                                 : std::string(attr) == "ou" ? "OU"
                                                             : "title";
        s.emplace_back(name, v);
      }
    }
    std::stringstream uids(get("uid"));
    for (std::string uid; std::getline(uids, uid, ';');) {
      uid.erase(0, uid.find_first_not_of(' '));
      uid.erase(uid.find_last_not_of(' ') + 1);
      if (!uid.empty()) s.emplace_back("UID", uid);
    }
    if (auto e = get("email"); !e.empty()) s.emplace_back("emailAddress", e);
    s.emplace_back("CN", get("cn"));
    try {
      row.subject = parse_subject(format_subject(s));
    } catch (const Error& e) {
      csv_fail(csv, line, e.detail());
    }
    if (auto k = get("key"); !k.empty()) {
      auto alg = pkcs11::parse_key_algorithm(k);
      if (!alg) csv_fail(csv, line, "key '" + k + "' is not rsa2048, rsa3072 or ec-p256");
      row.key = *alg;
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

BatchReport run_batch(
    Provisioner& p, const BatchOptions& o, const Secret& so_pin, const Secret& user_pin,
    const std::function<void(std::size_t, std::size_t, const BatchRowReport&)>& progress,
    const std::function<bool()>& stop) {
  const auto rows = read_batch_csv(o.csv, o.defaults);
  fs::create_directories(o.out_dir);
  const fs::path state_file =
      o.state_file.empty() ? o.out_dir / "provision-state.json" : o.state_file;
  nlohmann::json state = load_state(state_file);
  state["csv"] = fs::absolute(o.csv).string();
  auto& done_rows = state["rows"];

  BatchReport report;
  std::size_t worked = 0;
  bool stopped = false;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const BatchRow& row = rows[i];
    BatchRowReport r;
    r.index = i + 1;
    r.label = row.label;
    const bool limited = o.limit != 0 && worked >= o.limit;
    if (done_rows.contains(row.label) && done_rows[row.label].value("status", "") == "done") {
      const auto& s = done_rows[row.label];
      r.status = "skipped";
      r.serial = s.value("serial", "");
      r.key_id = s.value("key_id", "");
      r.csr = s.value("csr", "");
      r.certificate = s.value("certificate", "");
      // A certificate that arrived since the last run is still imported.
      const fs::path crt =
          o.certs_dir.empty() ? fs::path() : o.certs_dir / (file_stem(row.label) + ".crt");
      if (r.certificate.empty() && !crt.empty() && fs::exists(crt) && !limited &&
          !(stop && stop())) {
        r.status = "";
      } else {
        ++report.skipped;
        report.rows.push_back(r);
        if (progress) progress(i + 1, rows.size(), r);
        continue;
      }
    }
    if (limited || stopped || (stop && stop())) {
      report.interrupted = true;
      r.status = "pending";
      ++report.pending;
      report.rows.push_back(r);
      continue;
    }
    ++worked;
    try {
      std::optional<pkcs11::SlotState> slot;
      try {
        slot = p.find_token(row.label);
      } catch (const Error& e) {
        if (e.code() != ErrorCode::TokenNotFound || !o.init_blank) throw;
      }
      // One token at a time: ask for the next one until this row's token or a blank one is in.
      while (!slot && o.insert_token && o.init_blank &&
             std::ranges::none_of(p.admin().slots(),
                                  [](const pkcs11::SlotState& s) { return !s.initialized; })) {
        if (!o.insert_token(row)) throw Interrupted{};
        try {
          slot = p.find_token(row.label);
        } catch (const Error& e) {
          if (e.code() != ErrorCode::TokenNotFound) throw;
        }
      }
      if (!slot) {
        p.init_token(row.label, so_pin, user_pin);
        r.actions.emplace_back("init");
        slot = p.find_token(row.label);
      }
      r.serial = slot->serial;

      // Reuse the row's key pair when an earlier, interrupted run already made it.
      std::vector<pkcs11::KeyPairInfo> mine;
      for (auto& k : p.key_pairs(row.label, user_pin)) {
        if (k.label == o.key_label) mine.push_back(std::move(k));
      }
      if (mine.size() > 1) {
        throw Error(ErrorCode::TokenError, std::to_string(mine.size()) + " key pairs labelled '" +
                                               o.key_label + "' on this token: check it by hand");
      }
      pkcs11::KeyPairInfo key = mine.empty() ? p.keygen(row.label, user_pin, row.key, o.key_label)
                                             : std::move(mine.front());
      if (mine.empty()) r.actions.emplace_back("keygen");
      r.key_id = to_hex(key.id);

      const fs::path csr_path = o.out_dir / (file_stem(row.label) + ".csr");
      if (!fs::exists(csr_path)) {
        const CsrResult csr = p.make_csr(row.label, user_pin, r.key_id, row.subject);
        write_atomically(csr_path, csr.pem);
        r.actions.emplace_back("csr");
      }
      r.csr = csr_path.string();

      if (!o.certs_dir.empty()) {
        const fs::path crt = o.certs_dir / (file_stem(row.label) + ".crt");
        if (fs::exists(crt)) {
          std::vector<Bytes> ders;
          for (const auto& c : x509_read_file(crt.string())) ders.push_back(x509_to_der(c.get()));
          const ImportResult imp = p.import_certificate(row.label, user_pin, ders);
          r.certificate = imp.certificate_added ? "imported" : "present";
          if (imp.certificate_added) r.actions.emplace_back("import");
        }
      }
      r.status = "done";
      ++report.done;
      done_rows[row.label] = {{"status", "done"},
                              {"serial", r.serial},
                              {"key_id", r.key_id},
                              {"csr", r.csr},
                              {"certificate", r.certificate}};
    } catch (const Interrupted&) {
      report.interrupted = true;
      r.status = "pending";
      ++report.pending;
      report.rows.push_back(r);
      stopped = true;
      continue;
    } catch (const Error& e) {
      r.status = "failed";
      r.error = std::string(e.name()) + ": " + e.detail();
      ++report.failed;
      done_rows[row.label] = {{"status", "failed"}, {"error", r.error}};
    }
    write_atomically(state_file, state.dump(2));
    report.rows.push_back(r);
    if (progress) progress(i + 1, rows.size(), r);
  }
  return report;
}

}  // namespace kyso::firmware_config
