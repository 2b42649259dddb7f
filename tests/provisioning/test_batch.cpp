// `kyso provision batch`: a 30-person staff CSV, interrupted after 10 rows, interrupted again as
// if by a crash mid-row, then resumed: 30 correct tokens, one key each, no key made twice.

#include <openssl/pem.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "fixture.hpp"
#include "kyso/firmware_config/provision.hpp"
#include "kyso/pkcs11/admin.hpp"
#include "scratch_hsm.hpp"

namespace fs = std::filesystem;
using kyso::Bytes;
using kyso::test::ScratchHsm;
using kyso::test::secret;

namespace {

constexpr int kRows = 30;

std::string label_of(int i) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "GV-%03d", i);
  return buf;
}

void write_staff_csv(const std::string& path) {
  static const std::array<const char*, 6> family{"Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Võ"};
  static const std::array<const char*, 5> given{"Thị Ánh", "Văn Bình", "Minh Đức", "Thu Hà",
                                                "Quốc Hùng"};
  std::ofstream out(path, std::ios::binary);
  out << "\xEF\xBB\xBFlabel,cn,uid,title,key\n";  // as Excel saves UTF-8
  for (int i = 1; i <= kRows; ++i) {
    char cccd[16];
    std::snprintf(cccd, sizeof cccd, "0011850%05d", i);
    const char* title =
        i == 1 ? "Hiệu trưởng" : (i % 2 == 0 ? "Giáo viên chủ nhiệm" : "Giáo viên bộ môn");
    out << label_of(i) << ",\"" << family[static_cast<std::size_t>(i) % family.size()] << " "
        << given[static_cast<std::size_t>(i) % given.size()] << "\",CCCD:" << cccd << "," << title
        << "," << (i % 10 == 1 ? "rsa2048" : "ec-p256") << "\n";
  }
}

nlohmann::json run_batch(const ScratchHsm& hsm, const std::string& extra) {
  const char* cli = std::getenv("KYSO_CLI");
  REQUIRE(cli != nullptr);
  const std::string cmd =
      std::string(cli) + " --module '" + hsm.module + "' --lang en provision batch '" +
      hsm.path("staff.csv") + "' --out '" + hsm.path("out") + "' --so-pin-file '" +
      hsm.so_pin_file + "' --pin-file '" + hsm.pin_file +
      "' --o 'Trường THPT Chu Văn An' --st 'HÀ NỘI' --json " + extra + " 2>/dev/null";
  const auto [rc, out] = kyso::test::run(cmd);
  INFO(cmd << "\n" << out);
  REQUIRE(rc == 0);
  return nlohmann::json::parse(out);
}

const nlohmann::json& row(const nlohmann::json& report, const std::string& label) {
  for (const auto& r : report.at("rows")) {
    if (r.at("label") == label) return r;
  }
  FAIL("no row " << label);
  throw std::logic_error("unreachable");
}

}  // namespace

TEST_CASE("provisionBatch_interruptedThenResumed_makes30TokensWithoutDuplicateKeys",
          "[provision]") {
  ScratchHsm hsm;
  write_staff_csv(hsm.path("staff.csv"));

  // First run: stopped after 10 rows (as IT would with --limit, or Ctrl-C between rows).
  const auto first = run_batch(hsm, "--limit 10");
  CHECK(first.at("done") == 10);
  CHECK(first.at("pending") == 20);
  CHECK(first.at("interrupted") == true);
  CHECK(row(first, "GV-001").at("actions") == nlohmann::json{"init", "keygen", "csr"});

  // Second run does row 11, then "crashes" before recording it: its state entry and CSR vanish.
  const auto second = run_batch(hsm, "--limit 1");
  CHECK(second.at("skipped") == 10);
  CHECK(second.at("done") == 1);
  const std::string state_file = hsm.path("out/provision-state.json");
  nlohmann::json state = nlohmann::json::parse(std::ifstream(state_file));
  const std::string key_11 = state.at("rows").at("GV-011").at("key_id");
  state["rows"].erase("GV-011");
  std::ofstream(state_file) << state.dump();
  fs::remove(hsm.path("out/GV-011.csr"));

  // Resume: rows 1-10 skipped, row 11 reuses its token and key, rows 12-30 done from scratch.
  const auto third = run_batch(hsm, "");
  CHECK(third.at("skipped") == 10);
  CHECK(third.at("done") == 20);
  CHECK(third.at("failed") == 0);
  CHECK(third.at("interrupted") == false);
  const auto& r11 = row(third, "GV-011");
  CHECK(r11.at("actions") == nlohmann::json{"csr"});
  CHECK(r11.at("keyId") == key_11);

  // A fourth run has nothing left to do.
  const auto fourth = run_batch(hsm, "");
  CHECK(fourth.at("skipped") == kRows);
  CHECK(fourth.at("done") == 0);

  // The tokens themselves: 30 labelled tokens, one key pair each, all keys distinct, and each
  // CSR signed by (and carrying the public key of) its own token's key.
  kyso::pkcs11::Admin admin(hsm.module);
  std::set<std::string> labels;
  std::set<Bytes> keys;
  for (const auto& slot : admin.slots()) {
    if (!slot.initialized) continue;
    labels.insert(slot.label);
    auto session = admin.open(slot.slot_id);
    session.login_user(secret("123456"));
    const auto pairs = session.key_pairs();
    INFO(slot.label);
    REQUIRE(pairs.size() == 1);
    CHECK(pairs[0].label == "kyso-sign");
    CHECK(pairs[0].key_type == (slot.label.ends_with("1") ? "RSA" : "EC"));
    keys.insert(pairs[0].spki);

    kyso::BioPtr bio(BIO_new_file(hsm.path("out/" + slot.label + ".csr").c_str(), "r"));
    REQUIRE(bio);
    std::unique_ptr<X509_REQ, kyso::FnDeleter<X509_REQ_free>> req(
        PEM_read_bio_X509_REQ(bio.get(), nullptr, nullptr, nullptr));
    REQUIRE(req);
    EVP_PKEY* pub = X509_REQ_get0_pubkey(req.get());
    CHECK(X509_REQ_verify(req.get(), pub) == 1);
    unsigned char* der = nullptr;
    const int len = i2d_PUBKEY(pub, &der);
    const Bytes spki(der, der + len);
    OPENSSL_free(der);
    CHECK(spki == pairs[0].spki);
  }
  CHECK(labels.size() == kRows);
  CHECK(keys.size() == kRows);
  CHECK(labels.contains("GV-001"));
  CHECK(labels.contains("GV-030"));

  // One CSR checked by the openssl tool too, with its Vietnamese subject.
  const auto [rc, out] =
      kyso::test::run("openssl req -in '" + hsm.path("out/GV-002.csr") +
                      "' -verify -noout -subject -nameopt utf8,sep_comma_plus_space 2>&1");
  CHECK(rc == 0);
  CHECK_THAT(out,
             Catch::Contains(
                 "subject=C=VN, ST=HÀ NỘI, O=Trường THPT Chu Văn An, title=Giáo viên chủ nhiệm, "
                 "UID=CCCD:001185000002, CN="));
}

TEST_CASE("provisionBatch_badCsv_namesTheLine_beforeTouchingTokens", "[provision]") {
  ScratchHsm hsm;
  std::ofstream(hsm.path("staff.csv"))
      << "label,cn,uid\nGV-1,Nguyễn Thị Ánh,CCCD:001185012345\nGV-2,Trần Văn Bình,CCCD:123\n";
  try {
    (void)kyso::firmware_config::read_batch_csv(hsm.path("staff.csv"), {});
    FAIL("accepted");
  } catch (const kyso::Error& e) {
    CHECK_THAT(e.detail(), Catch::Contains("staff.csv:3: ") && Catch::Contains("CCCD"));
  }
  kyso::pkcs11::Admin admin(hsm.module);
  for (const auto& s : admin.slots()) CHECK_FALSE(s.initialized);
}
