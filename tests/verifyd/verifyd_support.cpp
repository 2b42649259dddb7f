#include "verifyd_support.hpp"

#include <unistd.h>

#include <fstream>

namespace kyso::test {

firmware_config::VerifydConfig demo_profile(const std::string& ocsp_url,
                                            const std::string& work_dir) {
  firmware_config::VerifydConfig c;
  c.name = "Sở GD&ĐT Hà Nội - tra cứu học bạ (thử nghiệm)";
  c.listen_address = "127.0.0.1";
  c.port = 0;
  c.anchors = {pki_path("root")};
  c.crl_files = {pki_path("crl")};
  c.ocsp_url = ocsp_url.empty() ? "http://127.0.0.1:1/" : ocsp_url;
  c.fetch_timeout = std::chrono::seconds(5);
  c.work_dir = work_dir;
  c.limits.max_document_bytes = 4UL * 1024 * 1024;
  c.limits.max_concurrent = 2;
  return c;
}

void add_demo_seal(firmware_config::VerifydConfig& c) {
  const auto& f = fixture();
  firmware_config::VerifydSeal s;
  s.module = f.module;
  s.token_label = f.manifest["token_label"].get<std::string>();
  s.credential_id = f.credential("seal").credential_id();
  s.pin_file = f.pin_file;
  s.algorithm = "rsa-pss-sha256";
  c.seal = s;
}

RunningVerifyd::RunningVerifyd(firmware_config::VerifydConfig c)
    : server_(std::make_unique<kyso::verifyd::Server>(std::move(c))) {
  server_->start();
}

std::string RunningVerifyd::url(const std::string& path) const {
  return "http://127.0.0.1:" + std::to_string(server_->port()) + path;
}

Answer curl(const std::string& args, const std::string& input) {
  char tmpl[] = "/tmp/kyso-verifyd-answer-XXXXXX";
  const int fd = mkstemp(tmpl);
  if (fd >= 0) close(fd);
  const auto [rc, code] = run((input.empty() ? "" : input + " | ") + "curl -s -o " +
                              std::string(tmpl) + " -w '%{http_code}' " + args);
  Answer a;
  a.status = code.empty() ? 0 : std::atoi(code.c_str());
  const auto body = read_bytes(tmpl);
  a.body.assign(body.begin(), body.end());
  unlink(tmpl);
  return a;
}

Answer post_file(const std::string& url, const std::string& file, const std::string& extra) {
  return curl("--data-binary @" + file + " -H 'Content-Type: application/octet-stream' " + extra +
              " '" + url + "'");
}

Answer get(const std::string& url) {
  return curl("'" + url + "'");
}

std::string schema_errors(const nlohmann::json& report) {
  ScratchDir dir;
  write_text(dir.file("r.json"), report.dump());
  const std::string schema = std::string(KYSO_SOURCE_DIR) + "/docs/schemas/validation-report.json";
  const auto [rc, out] =
      run("/usr/bin/python3 -c 'import json,sys,jsonschema; "
          "jsonschema.Draft202012Validator(json.load(open(sys.argv[1]))).validate(json.load(open("
          "sys.argv[2])))' " +
          schema + " " + dir.file("r.json") + " 2>&1");
  return rc == 0 ? "" : out;
}

}  // namespace kyso::test
