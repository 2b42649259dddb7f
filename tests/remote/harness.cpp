#include "harness.hpp"

#include <unistd.h>

#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "fixture.hpp"
#include "kyso/appliance/security.hpp"
#include "postgres_cluster.hpp"

namespace kyso::test::remote {
namespace fs = std::filesystem;
using kyso::appliance::ApplianceConfig;

namespace {

void must(const std::string& cmd) {
  const auto [rc, out] = run(cmd + " 2>&1");
  if (rc != 0) throw std::runtime_error("failed (" + std::to_string(rc) + "): " + cmd + "\n" + out);
}

struct ScratchDir {
  std::string path;
  ~ScratchDir() {
    std::error_code ec;
    if (!path.empty()) fs::remove_all(path, ec);
  }
};

Env make_env() {
  const Fixture& f = fixture();  // sets SOFTHSM2_CONF to the shared token: replaced below
  static ScratchDir scratch;
  std::string tmpl = (fs::temp_directory_path() / "kyso-remote-test.XXXXXX").string();
  if (mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  scratch.path = tmpl;
  Env e;
  e.dir = tmpl;
  // A private copy of the token, before any PKCS#11 module is loaded in this process.
  fs::copy(f.dir + "/tokens", e.dir + "/tokens", fs::copy_options::recursive);
  std::ofstream(e.dir + "/softhsm2.conf") << "directories.tokendir = " << e.dir
                                          << "/tokens\nobjectstore.backend = file\n"
                                             "log.level = ERROR\n";
  ::setenv("SOFTHSM2_CONF", (e.dir + "/softhsm2.conf").c_str(), 1);

  e.ca_file = e.dir + "/ca.crt";
  e.cert_file = e.dir + "/tls.crt";
  e.key_file = e.dir + "/tls.key";
  const std::string d = e.dir;
  must(
      "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "
      "'/CN=Kyso test TLS CA' -keyout " +
      d + "/ca.key -out " + e.ca_file);
  must(
      "openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=127.0.0.1 "
      "-keyout " +
      e.key_file + " -out " + d + "/tls.csr");
  std::ofstream(d + "/san.ext") << "subjectAltName=IP:127.0.0.1,DNS:localhost\n";
  must("openssl x509 -req -in " + d + "/tls.csr -CA " + e.ca_file + " -CAkey " + d +
       "/ca.key -CAcreateserial -days 2 -extfile " + d + "/san.ext -out " + e.cert_file);

  e.principal_hash = kyso::appliance::hash_password(secret(kPrincipalPassword), 10);
  e.teacher_hash = kyso::appliance::hash_password(secret(kTeacherPassword), 10);
  e.client_hash = kyso::appliance::hash_password(secret(kClientSecret), 10);
  return e;
}

}  // namespace

const Env& env() {
  static const Env e = make_env();
  return e;
}

Secret secret(std::string_view s) {
  Secret out;
  out.assign(s);
  return out;
}

Harness::Harness(const std::function<void(ApplianceConfig&)>& tweak) {
  const Env& e = env();
  const Fixture& f = fixture();
  static int n = 0;
  state_dir_ = e.dir + "/state" + std::to_string(++n);
  fs::create_directories(state_dir_);
  config_.name = "Kyso test appliance";
  config_.listen_address = "127.0.0.1";
  config_.port = 0;
  config_.tls_cert_file = e.cert_file;
  config_.tls_key_file = e.key_file;
  config_.pkcs11_modules = {f.module};
  // The whole suite runs on either backend (ctest runs it again with KYSO_TEST_STATE=postgresql).
  config_.state_db = on_postgres() ? PgCluster::get().new_database() : state_dir_ + "/state.db";
  config_.users = {
      {"principal", e.principal_hash, kPrincipalTotp, {f.credential("principal").credential_id()}},
      {"teacher",
       e.teacher_hash,
       kTeacherTotp,
       {f.credential("teacher").credential_id(), f.credential("teacher-ec").credential_id()}},
  };
  config_.clients = {{"school-server", e.client_hash, "teacher"}};
  config_.limits.totp_window = 3;
  if (tweak) tweak(config_);
  app_ = std::make_unique<kyso::appliance::Appliance>(config_);
  app_->start();
}

Harness::~Harness() {
  if (app_) app_->stop();
}

std::string Harness::base_url() const {
  return "https://127.0.0.1:" + std::to_string(app_->port()) + "/csc/v2";
}

kyso::remote::ClientOptions Harness::options() const {
  kyso::remote::ClientOptions o;
  o.base_url = base_url();
  o.ca_file = env().ca_file;
  o.request_timeout = std::chrono::seconds(20);
  return o;
}

std::shared_ptr<kyso::remote::CscClient> Harness::login(const std::string& user) {
  auto c = std::make_shared<kyso::remote::CscClient>(options());
  c->login(user, secret(user == "principal" ? kPrincipalPassword : kTeacherPassword));
  return c;
}

Secret OtpSource::next() {
  const std::time_t t = std::time(nullptr) + 30L * step_++;
  return secret(kyso::appliance::totp_generate(secret_, t));
}

Secret OtpSource::wrong() {
  // Not any code of the window around now (+-3 steps): shift the current one.
  std::string code = kyso::appliance::totp_generate(secret_, std::time(nullptr));
  for (;;) {
    code[0] = code[0] == '9' ? '0' : static_cast<char>(code[0] + 1);
    bool hit = false;
    for (int k = -4; k <= 4; ++k) {
      hit = hit || kyso::appliance::totp_generate(secret_, std::time(nullptr) + 30L * k) == code;
    }
    if (!hit) return secret(code);
  }
}

}  // namespace kyso::test::remote
