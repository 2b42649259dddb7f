// The `kyso` CLI as IT staff run it, on the demo token.

#include <catch2/catch.hpp>
#include <cstdlib>

#include "fixture.hpp"

using kyso::test::fixture;

namespace {

std::string kyso_cmd(const std::string& args) {
  (void)fixture();  // sets SOFTHSM2_CONF and KYSO_CLI for the child process
  const char* cli = std::getenv("KYSO_CLI");
  REQUIRE(cli != nullptr);
  return std::string(cli) + " --no-system-modules --module " + fixture().module + " " + args;
}

nlohmann::json run_json(const std::string& args, int expect_exit = 0) {
  auto [code, out] = kyso::test::run(kyso_cmd(args) + " 2>/dev/null");
  INFO(args << "\n" << out);
  REQUIRE(code == expect_exit);
  return nlohmann::json::parse(out);
}

}  // namespace

TEST_CASE("cli_credentialsJson_listsTeacherPrincipalAndSealWithKindAndUids", "[cli]") {
  const auto j = run_json("credentials --json");
  std::map<std::string, nlohmann::json> by_id;
  for (const auto& c : j.at("credentials")) by_id[c.at("id")] = c;

  const auto& teacher = by_id.at(fixture().credential("teacher").credential_id());
  CHECK(teacher["certificate"]["commonName"] == "Nguyễn Thị Ánh");
  CHECK(teacher["certificate"]["kind"] == "person");
  CHECK(teacher["certificate"]["cccd"] == "001185012345");
  CHECK(teacher["suggestedRole"] == "teacher");

  const auto& principal = by_id.at(fixture().credential("principal").credential_id());
  CHECK(principal["certificate"]["kind"] == "person");
  CHECK(principal["certificate"]["title"] == "Hiệu trưởng");
  CHECK(principal["suggestedRole"] == "principal");

  const auto& seal = by_id.at(fixture().credential("seal").credential_id());
  CHECK(seal["certificate"]["kind"] == "organization");
  CHECK(seal["certificate"]["mns"] == "1047665");
  CHECK(seal["certificate"]["uids"][0]["prefix"] == "MNS");
  CHECK(seal["suggestedRole"] == "seal");
  CHECK(seal["source"]["name"] == "Kyso Demo");
}

TEST_CASE("cli_credentialsRole_sealListsOnlyOrganizations", "[cli]") {
  const auto j = run_json("credentials --role seal --json");
  REQUIRE(j.at("credentials").size() == 1);
  CHECK(j["credentials"][0]["certificate"]["kind"] == "organization");
  const auto p = run_json("credentials --role principal --json");
  CHECK(p["credentials"][0]["suggestedRole"] == "principal");  // most likely first
  for (const auto& c : p["credentials"]) CHECK(c["certificate"]["kind"] == "person");
}

TEST_CASE("cli_signHash_eachRole_verifiesWithOpenSsl", "[cli]") {
  const std::string hash(64, 'a');
  for (auto [name, alg] : {std::pair{"teacher", kyso::SignAlgorithm::RsaPssSha256},
                           std::pair{"principal", kyso::SignAlgorithm::RsaPkcs1Sha256},
                           std::pair{"seal", kyso::SignAlgorithm::RsaPkcs1Sha256},
                           std::pair{"teacher-ec", kyso::SignAlgorithm::EcdsaSha256}}) {
    const auto& c = fixture().credential(name);
    // A unique prefix of the id is enough, as with git.
    const auto j = run_json("sign-hash --json --credential " + c.credential_id().substr(0, 12) +
                            " --alg " + std::string(kyso::to_string(alg)) + " --hash " + hash +
                            " --pin-file " + fixture().pin_file);
    CHECK(j["credential"] == c.credential_id());
    CHECK(j["chain"].size() == 2);
    CHECK(kyso::test::openssl_verify(kyso::from_base64(j["certificate"].get<std::string>()), alg,
                                     kyso::from_hex(hash),
                                     kyso::from_base64(j["signature"].get<std::string>())));
  }
}

TEST_CASE("cli_signHash_pinIsNeverAnArgument_andErrorsAreBilingual", "[cli][security]") {
  auto [code, out] =
      kyso::test::run(kyso_cmd("sign-hash --credential 00 --hash 00 --pin 123456 2>&1"));
  CHECK(code != 0);  // there is no --pin option
  const auto err = run_json("sign-hash --json --credential ffff --hash " + std::string(64, 'a') +
                                " --pin-file " + fixture().pin_file,
                            1);
  CHECK(err["error"]["code"] == "CREDENTIAL_NOT_FOUND");
  auto [code_en, out_en] = kyso::test::run(
      kyso_cmd("--lang en sign-hash --credential ffff --hash " + std::string(64, 'a') + " 2>&1"));
  CHECK(code_en == 1);
  CHECK(out_en.find("certificate was not found") != std::string::npos);
}

TEST_CASE("cli_tokensJson_reportsAModuleThatFailedToLoad", "[cli]") {
  const auto j = run_json("--module /nonexistent/viettel-ca_v6.so tokens --json");
  bool saw_failure = false;
  for (const auto& m : j["modules"]) {
    if (m["path"] == "/nonexistent/viettel-ca_v6.so") {
      saw_failure = true;
      CHECK_FALSE(m["loaded"].get<bool>());
    }
  }
  CHECK(saw_failure);
  bool demo = false;
  for (const auto& t : j["tokens"]) demo = demo || t["label"] == "Kyso Demo";
  CHECK(demo);
}
