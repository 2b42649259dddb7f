// What field tokens do to a signing session, simulated by kyso_fault_pkcs11.so wrapping the
// real SoftHSM2 module: wrong and locked PINs, PIN pads, tokens pulled out mid-batch.

#include <p11-kit/pkcs11.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <thread>

#include "fixture.hpp"
#include "kyso/core/secret.hpp"
#include "kyso/pkcs11/library.hpp"

using kyso::ErrorCode;
using kyso::SignAlgorithm;
using kyso::test::Faults;
using kyso::test::fixture;

namespace {

// A library over the fault module; the counters start at zero for each test. `sign_deadline`:
// the watchdog's deadline for a signature, short for the tests of a stuck module.
std::unique_ptr<kyso::pkcs11::Library> faulty_library(
    std::optional<std::chrono::milliseconds> sign_deadline = {}) {
  kyso::pkcs11::ModuleConfig cfg{
      .paths = {fixture().fault_module}, .use_p11kit = false, .use_known = false};
  if (sign_deadline) cfg.timeouts = {.quick = std::chrono::seconds(5), .sign = *sign_deadline};
  auto lib = std::make_unique<kyso::pkcs11::Library>(std::move(cfg));
  REQUIRE(lib->modules().at(0).loaded);
  Faults::reset();
  return lib;
}

// The threads of this process now, as the kernel lists them.
std::size_t thread_count() {
  std::size_t n = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator("/proc/self/task")) {
    ++n;
  }
  return n;
}

// Waits up to 10 s for `done()`.
template <typename F>
bool eventually(F done) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!done()) {
    if (std::chrono::steady_clock::now() > until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

kyso::Secret secret(std::string_view s) {
  kyso::Secret out;
  out.assign(s);
  return out;
}

ErrorCode login_error(kyso::Signer& signer, const kyso::Secret* pin) {
  try {
    signer.authorize({.pin = pin}, {});
  } catch (const kyso::Error& e) {
    return e.code();
  }
  return ErrorCode::Internal;  // "no error": no test expects Internal
}

std::vector<kyso::Bytes> digests(int n) {
  std::vector<kyso::Bytes> out;
  for (int i = 0; i < n; ++i) {
    const std::string doc = "Học bạ số #" + std::to_string(i);
    out.push_back(kyso::sha256({reinterpret_cast<const std::uint8_t*>(doc.data()), doc.size()}));
  }
  return out;
}

}  // namespace

TEST_CASE("login_wrongPin_triesExactlyOnce_andNeverResendsIt", "[pkcs11][security]") {
  auto lib = faulty_library();
  auto signer = lib->signer(fixture().credential("teacher").credential_id());
  const auto wrong = secret("000000");

  CHECK(login_error(*signer, &wrong) == ErrorCode::PinIncorrect);
  CHECK(Faults::get("count.C_Login") == 1);

  // The same PIN again is refused without touching the token: it would only burn a try.
  CHECK(login_error(*signer, &wrong) == ErrorCode::PinRepeated);
  CHECK(Faults::get("count.C_Login") == 1);

  // Signing is refused too, without the token being asked.
  try {
    (void)signer->sign_digest(SignAlgorithm::RsaPkcs1Sha256, kyso::Bytes(32, 3));
    FAIL("signed after a failed login");
  } catch (const kyso::Error& e) {
    CHECK(e.code() == ErrorCode::LoginRequired);
  }
  CHECK(Faults::get("count.C_Sign") == 0);

  // The user types the right PIN: one more C_Login, and signing works.
  const auto right = secret(fixture().user_pin);
  signer->authorize({.pin = &right}, {});
  CHECK(Faults::get("count.C_Login") == 2);
  CHECK_NOTHROW(signer->sign_digest(SignAlgorithm::RsaPkcs1Sha256, kyso::Bytes(32, 3)));
}

TEST_CASE("login_lockedFinalTryOrMustChangePin_refusedWithoutTouchingTheCounter",
          "[pkcs11][security]") {
  auto lib = faulty_library();
  const auto pin = secret(fixture().user_pin);
  for (auto [flag, code] : {std::pair{CKF_USER_PIN_LOCKED, ErrorCode::PinLocked},
                            std::pair{CKF_USER_PIN_FINAL_TRY, ErrorCode::PinFinalTry},
                            std::pair{CKF_USER_PIN_TO_BE_CHANGED, ErrorCode::PinMustChange}}) {
    Faults::reset();
    Faults::set("token_flags_or", static_cast<long>(flag));
    auto signer = lib->signer(fixture().credential("teacher").credential_id());
    INFO(kyso::code_name(code));
    CHECK(login_error(*signer, &pin) == code);
    CHECK(Faults::get("count.C_Login") == 0);
    CHECK_FALSE(kyso::message(code, kyso::Language::Vi).empty());
  }
}

TEST_CASE("login_pinLockedByToken_mapsToPinLocked", "[pkcs11][security]") {
  auto lib = faulty_library();
  Faults::set("fail_login_rv", static_cast<long>(CKR_PIN_LOCKED));
  auto signer = lib->signer(fixture().credential("teacher").credential_id());
  const auto pin = secret(fixture().user_pin);
  CHECK(login_error(*signer, &pin) == ErrorCode::PinLocked);
  CHECK(Faults::get("count.C_Login") == 1);
}

TEST_CASE("login_pinPad_sendsNoPinFromKyso", "[pkcs11][security]") {
  ::setenv("KYSO_FAULT_PINPAD_PIN", fixture().user_pin.c_str(), 1);
  auto lib = faulty_library();
  Faults::set("token_flags_or", static_cast<long>(CKF_PROTECTED_AUTHENTICATION_PATH));
  auto signer = lib->signer(fixture().credential("teacher-ec").credential_id());
  REQUIRE(signer->auth_required() == kyso::AuthKind::ProtectedPath);
  signer->authorize({}, {});
  CHECK(signer->auth_required() == kyso::AuthKind::None);
  const kyso::Bytes d(32, 9);
  CHECK(kyso::test::openssl_verify(signer->credential().cert.der, SignAlgorithm::EcdsaSha256, d,
                                   signer->sign_digest(SignAlgorithm::EcdsaSha256, d)));
}

TEST_CASE("signBatch_oneLoginForTheWholeBatch", "[pkcs11]") {
  auto lib = faulty_library();
  auto signer = lib->signer(fixture().credential("principal").credential_id());
  const auto pin = secret(fixture().user_pin);
  signer->authorize({.pin = &pin}, {});
  const auto ds = digests(40);
  const auto results = signer->sign_digests(SignAlgorithm::RsaPssSha256, ds);
  REQUIRE(results.size() == ds.size());
  for (std::size_t i = 0; i < ds.size(); ++i) {
    REQUIRE(results[i].ok());
    CHECK(kyso::test::openssl_verify(signer->credential().cert.der, SignAlgorithm::RsaPssSha256,
                                     ds[i], results[i].signature));
  }
  CHECK(Faults::get("count.C_Login") == 1);
  CHECK(Faults::get("count.C_Sign") == 40);
}

// Issue 13: a batch goes to the module as one run of C_SignInit + C_Sign per session, in one
// hand-off to the watchdog's call pool; one hand-off per signature (a futex wake and wait on
// two threads, and on a busy machine a wait for a CPU) kept the HSM idle between signatures.
// The signing deadline still applies to each call, not to the run: a run four times as long as
// the deadline is not taken for a stuck module.
TEST_CASE("signBatch_oneHandOffPerRun_eachCallStillUnderItsOwnDeadline", "[pkcs11]") {
  using namespace std::chrono_literals;
  auto lib = faulty_library(250ms);
  auto signer = lib->signer(fixture().credential("teacher").credential_id());
  const auto pin = secret(fixture().user_pin);
  signer->authorize({.pin = &pin}, {});
  Faults::set("sign_delay_us", 50'000);  // each signature: 50 ms, a fifth of the deadline
  const auto ds = digests(20);
  rusage before{};
  REQUIRE(::getrusage(RUSAGE_THREAD, &before) == 0);
  const auto results = signer->sign_digests(SignAlgorithm::RsaPkcs1Sha256, ds);
  rusage after{};
  REQUIRE(::getrusage(RUSAGE_THREAD, &after) == 0);
  Faults::set("sign_delay_us", 0);
  REQUIRE(results.size() == ds.size());
  for (std::size_t i = 0; i < ds.size(); ++i) {
    REQUIRE(results[i].ok());
    CHECK(kyso::test::openssl_verify(signer->credential().cert.der, SignAlgorithm::RsaPkcs1Sha256,
                                     ds[i], results[i].signature));
  }
  CHECK(Faults::get("count.C_Sign") == 20);
  CHECK(lib->modules().at(0).reloads == 0);  // never given up on
  // This thread slept while the run went on, waking once per deadline to see the run's progress
  // (1 s of signing, 250 ms deadline): about 5 switches, where one per signature made 20.
  CHECK(after.ru_nvcsw - before.ru_nvcsw <= 8);
}

TEST_CASE("signBatch_tokenRemovedMidway_reportsExactlySignedDocuments", "[pkcs11]") {
  auto lib = faulty_library();
  auto signer = lib->signer(fixture().credential("teacher").credential_id());
  const auto pin = secret(fixture().user_pin);
  signer->authorize({.pin = &pin}, {});
  Faults::set("remove_after_signs", 7);
  const auto ds = digests(12);
  const auto results = signer->sign_digests(SignAlgorithm::RsaPkcs1Sha256, ds);
  REQUIRE(results.size() == 12);
  for (std::size_t i = 0; i < 7; ++i) {
    CHECK(results[i].ok());
    CHECK(kyso::test::openssl_verify(signer->credential().cert.der, SignAlgorithm::RsaPkcs1Sha256,
                                     ds[i], results[i].signature));
  }
  for (std::size_t i = 7; i < 12; ++i) {
    REQUIRE_FALSE(results[i].ok());
    CHECK(results[i].error->code() == ErrorCode::TokenRemoved);
    CHECK(results[i].error->retriable());
  }
  // Item 8 met the removal (at C_SignInit); items 9..12 were not sent to a token that is gone.
  CHECK(Faults::get("count.C_SignInit") == 8);
  CHECK(Faults::get("count.C_Sign") == 7);

  // The token disappears from the list, and comes back needing a new login.
  CHECK(lib->tokens().empty());
  Faults::set("removed", 0);
  auto again = lib->signer(fixture().credential("teacher").credential_id());
  CHECK(again->auth_required() == kyso::AuthKind::Pin);
  again->authorize({.pin = &pin}, {});
  CHECK_NOTHROW(again->sign_digest(SignAlgorithm::RsaPkcs1Sha256, ds[7]));
}

TEST_CASE("tokens_absent_credentialLookupSaysSo", "[pkcs11]") {
  auto lib = faulty_library();
  Faults::set("removed", 1);
  CHECK(lib->tokens().empty());
  CHECK(lib->credentials().empty());
  try {
    (void)lib->signer(fixture().credential("seal").credential_id());
    FAIL("found a credential on an absent token");
  } catch (const kyso::Error& e) {
    CHECK(e.code() == ErrorCode::CredentialNotFound);
  }
  try {
    (void)lib->token("Kyso Demo");
    FAIL("found an absent token");
  } catch (const kyso::Error& e) {
    CHECK(e.code() == ErrorCode::TokenNotFound);
  }
}

TEST_CASE("sign_alwaysAuthenticateKey_logsInForEachSignature_withThePinTypedOnce",
          "[pkcs11][security]") {
  auto lib = faulty_library();
  Faults::set("always_authenticate", 1);
  ::setenv("KYSO_FAULT_CONTEXT_PIN", fixture().user_pin.c_str(), 1);
  const auto& teacher = fixture().credential("teacher");
  auto signer = lib->signer(teacher.credential_id());
  const auto pin = secret(fixture().user_pin);
  signer->authorize({.pin = &pin}, {});
  CHECK(Faults::get("count.C_Login") == 1);
  CHECK(signer->authorization_note() ==
        "context-specific login before each signature, PIN kept for the batch");

  // The fault module refuses a C_Sign that no context-specific login preceded, so every
  // signature verifying proves the login came before it.
  const auto batch = digests(40);
  const auto results = signer->sign_digests(SignAlgorithm::RsaPkcs1Sha256, batch);
  for (std::size_t i = 0; i < batch.size(); ++i) {
    REQUIRE(results[i].ok());
    CHECK(kyso::test::openssl_verify(teacher.cert_der, SignAlgorithm::RsaPkcs1Sha256, batch[i],
                                     results[i].signature));
  }
  CHECK(Faults::get("count.C_Login.context") == 40);
  CHECK(Faults::get("count.C_Sign") == 40);
  CHECK(Faults::get("count.C_Login") == 41);  // the user's login and one per signature
  ::unsetenv("KYSO_FAULT_CONTEXT_PIN");
}

TEST_CASE("sign_alwaysAuthenticateKey_contextPinRefused_isNeverSentAgain", "[pkcs11][security]") {
  auto lib = faulty_library();
  Faults::set("always_authenticate", 1);
  // The card takes another PIN for the key than for the login (a PIN changed meanwhile).
  ::setenv("KYSO_FAULT_CONTEXT_PIN", "99999999", 1);
  auto signer = lib->signer(fixture().credential("teacher").credential_id());
  const auto pin = secret(fixture().user_pin);
  signer->authorize({.pin = &pin}, {});
  const auto results = signer->sign_digests(SignAlgorithm::RsaPkcs1Sha256, digests(5));
  REQUIRE(results[0].error);
  CHECK(results[0].error->code() == ErrorCode::PinIncorrect);
  for (std::size_t i = 1; i < results.size(); ++i) {
    REQUIRE(results[i].error);
    CHECK(results[i].error->code() == ErrorCode::PinRepeated);
  }
  CHECK(Faults::get("count.C_Login.context") == 1);  // one try, never repeated
  CHECK(Faults::get("count.C_Sign") == 0);
  ::unsetenv("KYSO_FAULT_CONTEXT_PIN");
}

TEST_CASE("sign_ordinaryKey_noContextSpecificLogin", "[pkcs11]") {
  auto lib = faulty_library();
  auto signer = lib->signer(fixture().credential("teacher").credential_id());
  const auto pin = secret(fixture().user_pin);
  signer->authorize({.pin = &pin}, {});
  CHECK(signer->authorization_note().empty());
  const auto results = signer->sign_digests(SignAlgorithm::RsaPkcs1Sha256, digests(3));
  CHECK(std::ranges::all_of(results, [](const auto& r) { return r.ok(); }));
  CHECK(Faults::get("count.C_Login") == 1);
  CHECK(Faults::get("count.C_Login.context") == 0);
}

TEST_CASE("quirks_avoidAndPrefer_shapeTheTokensCredentials", "[pkcs11]") {
  kyso::pkcs11::TokenQuirks q;
  q.profile = "SoftHSM test profile";
  q.manufacturer = "SoftHSM";
  q.avoid = {kyso::pkcs11::KeyFamily::RsaPss};
  q.prefer = {kyso::pkcs11::KeyFamily::Ecdsa};
  kyso::pkcs11::Library lib(kyso::pkcs11::ModuleConfig{
      .paths = {fixture().fault_module}, .use_p11kit = false, .use_known = false, .quirks = {q}});
  auto token = lib.token("Kyso Demo");
  REQUIRE(token->quirks() != nullptr);
  CHECK(token->quirks()->profile == "SoftHSM test profile");
  const auto creds = token->credentials();
  REQUIRE_FALSE(creds.empty());
  CHECK(creds.front().cert.key_type == "EC");  // preferred family first
  for (const auto& c : creds) {
    CHECK(std::ranges::none_of(c.algorithms, [](SignAlgorithm a) { return kyso::is_pss(a); }));
  }
  const auto& teacher = fixture().credential("teacher");
  auto signer = lib.signer(teacher.credential_id());
  CHECK(std::ranges::find(signer->credential().algorithms, SignAlgorithm::RsaPkcs1Sha256) !=
        signer->credential().algorithms.end());

  // A token no entry matches gets none.
  q.manufacturer = "EnterSafe";
  kyso::pkcs11::Library other(kyso::pkcs11::ModuleConfig{
      .paths = {fixture().fault_module}, .use_p11kit = false, .use_known = false, .quirks = {q}});
  CHECK(other.token("Kyso Demo")->quirks() == nullptr);
}

TEST_CASE("quirks_reinitializeAfterHotplug_moduleStartsAfreshWhenTheTokenReturns", "[pkcs11]") {
  kyso::pkcs11::TokenQuirks q;
  q.manufacturer = "SoftHSM";
  q.reinitialize_after_hotplug = true;
  kyso::pkcs11::Library lib(kyso::pkcs11::ModuleConfig{
      .paths = {fixture().fault_module}, .use_p11kit = false, .use_known = false, .quirks = {q}});
  Faults::reset();
  auto token = lib.token("Kyso Demo");
  CHECK(Faults::get("count.C_Initialize") == 0);
  Faults::set("removed", 1);
  CHECK(lib.tokens().empty());
  Faults::set("removed", 0);
  auto back = lib.token("Kyso Demo");
  CHECK(back == token);
  CHECK(Faults::get("count.C_Initialize") == 1);
  const auto& teacher = fixture().credential("teacher");
  auto signer = lib.signer(teacher.credential_id());
  const auto pin = secret(fixture().user_pin);
  signer->authorize({.pin = &pin}, {});
  const auto d = digests(1).front();
  CHECK(kyso::test::openssl_verify(teacher.cert_der, SignAlgorithm::RsaPkcs1Sha256, d,
                                   signer->sign_digest(SignAlgorithm::RsaPkcs1Sha256, d)));
  // Seen again while present: no further re-initialization.
  (void)lib.tokens();
  CHECK(Faults::get("count.C_Initialize") == 1);
}

// The soak's faults (bench/soak): C_Sign failing at random, and the module steered from a file,
// as it is inside a kyso-agent process no test reaches in-process.
TEST_CASE("faults_signFailPermille_failsThatShareOfSignaturesAsDeviceErrors", "[pkcs11]") {
  auto lib = faulty_library();
  auto signer = lib->signer(fixture().credential("teacher").credential_id());
  const auto pin = secret(fixture().user_pin);
  signer->authorize({.pin = &pin}, {});
  const auto ds = digests(200);
  Faults::set("sign_fail_permille", 1000);
  const auto all_fail = signer->sign_digests(SignAlgorithm::RsaPkcs1Sha256, ds);
  for (const auto& r : all_fail) {
    REQUIRE_FALSE(r.ok());
    CHECK(r.error->code() == ErrorCode::TokenError);
  }
  CHECK(Faults::get("count.C_Sign.failed") == 200);
  Faults::set("sign_fail_permille", 100);
  Faults::set("count.C_Sign.failed", 0);
  auto again = lib->signer(fixture().credential("teacher").credential_id());
  again->authorize({.pin = &pin}, {});
  const auto some = again->sign_digests(SignAlgorithm::RsaPkcs1Sha256, ds);
  std::size_t failed = 0;
  for (std::size_t i = 0; i < ds.size(); ++i) {
    if (!some[i].ok()) {
      ++failed;
      continue;
    }
    CHECK(kyso::test::openssl_verify(again->credential().cert.der, SignAlgorithm::RsaPkcs1Sha256,
                                     ds[i], some[i].signature));
  }
  CHECK(failed == static_cast<std::size_t>(Faults::get("count.C_Sign.failed")));
  CHECK(failed >= 2);  // 10% of 200: 20 expected; fewer than 2 is below 1 in 10^6
  CHECK(failed <= 60);
}

TEST_CASE("faults_controlFile_pullsAndReinsertsTheToken", "[pkcs11]") {
  auto lib = faulty_library();
  char tmpl[] = "/tmp/kyso-fault-control-XXXXXX";
  const int fd = ::mkstemp(tmpl);
  REQUIRE(fd >= 0);
  ::close(fd);
  const std::string path = tmpl;
  ::setenv("KYSO_FAULT_CONTROL", path.c_str(), 1);
  const auto write = [&](const char* text) {
    std::this_thread::sleep_for(std::chrono::milliseconds(30));  // past the module's 20 ms look
    std::ofstream(path) << text;
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
  };
  write("removed=1\n");
  CHECK(lib->tokens().empty());
  CHECK(Faults::get("removed") == 1);
  write("sign_delay_us=0, removed=0\n");
  CHECK_FALSE(lib->tokens().empty());
  CHECK(Faults::get("removed") == 0);
  ::unsetenv("KYSO_FAULT_CONTROL");
  std::filesystem::remove(path);
}

TEST_CASE("sign_moduleStopsAnswering_tokenUnresponsive_thenAFreshCopyOfTheModuleSigns",
          "[pkcs11]") {
  using namespace std::chrono_literals;
  auto lib = faulty_library(300ms);
  const auto& teacher = fixture().credential("teacher");
  auto signer = lib->signer(teacher.credential_id());
  const auto pin = secret(fixture().user_pin);
  signer->authorize({.pin = &pin}, {});

  // The module's C_Sign takes 30 s, a hundred times its deadline (a module stuck inside, as
  // OpenSC 0.23 after a pulled card): the batch stops at once instead of waiting.
  Faults::set("sign_delay_us", 30'000'000);
  const auto ds = digests(4);
  const auto start = std::chrono::steady_clock::now();
  const auto results = signer->sign_digests(SignAlgorithm::RsaPkcs1Sha256, ds);
  CHECK(std::chrono::steady_clock::now() - start < 2s);
  REQUIRE(results.size() == 4);
  for (const auto& r : results) {
    REQUIRE_FALSE(r.ok());
    CHECK(r.error->code() == ErrorCode::TokenUnresponsive);
    CHECK(r.error->retriable());
  }
  CHECK(Faults::get("count.C_Sign") == 1);  // the other items never reached the module

  // The stuck module is never called again: a fresh copy of it (its own globals, so no delay)
  // serves the same token, which needs a new login.
  auto again = lib->signer(teacher.credential_id());
  CHECK(Faults::get("count.C_Sign") == 1);
  REQUIRE(lib->modules().at(0).reloads == 1);
  CHECK(again->auth_required() == kyso::AuthKind::Pin);
  again->authorize({.pin = &pin}, {});
  const auto d = ds[0];
  CHECK(kyso::test::openssl_verify(teacher.cert_der, SignAlgorithm::RsaPkcs1Sha256, d,
                                   again->sign_digest(SignAlgorithm::RsaPkcs1Sha256, d)));
  // The old signer's token is gone with its module.
  try {
    (void)signer->sign_digest(SignAlgorithm::RsaPkcs1Sha256, d);
    FAIL("signed through the quarantined module");
  } catch (const kyso::Error& e) {
    CHECK((e.code() == ErrorCode::TokenRemoved || e.code() == ErrorCode::TokenUnresponsive));
  }
  // The stuck call comes back late (the test lowers the delay): its thread goes back to the
  // quarantined module's pool, which is never called again and joins it when it goes.
  Faults::set("sign_delay_us", 0);
  CHECK(eventually([] { return Faults::get("in.C_Sign") == 0; }));
}

// Issue 16, found by LeakSanitizer: the pool's threads were detached and ended on their own
// after the module was finalized, some after main had returned and OpenSSL's atexit cleanup
// had run (its per-thread state was then leaked or freed twice). Now a Library's end joins them.
TEST_CASE("library_destroyed_hasJoinedEveryThreadOfItsModuleCalls", "[pkcs11]") {
  const std::size_t before = thread_count();
  {
    auto lib = faulty_library();
    const auto& teacher = fixture().credential("teacher");
    auto signer = lib->signer(teacher.credential_id());
    const auto pin = secret(fixture().user_pin);
    signer->authorize({.pin = &pin}, {});
    // Two callers at once, as a batch's two lanes: each call in flight gets a thread of its own.
    Faults::set("sign_delay_us", 20'000);
    const auto ds = digests(4);
    std::atomic<int> ok{0};
    auto lane = [&] {
      for (const auto& d : ds) {
        try {
          const auto sig = signer->sign_digest(SignAlgorithm::RsaPkcs1Sha256, d);
          if (kyso::test::openssl_verify(teacher.cert_der, SignAlgorithm::RsaPkcs1Sha256, d, sig)) {
            ++ok;
          }
        } catch (const kyso::Error&) {  // counted as not ok
        }
      }
    };
    std::thread a(lane);
    std::thread b(lane);
    a.join();
    b.join();
    CHECK(ok == 8);
    CHECK(thread_count() >= before + 2);
  }
  CHECK(thread_count() == before);  // at once: none is left to end on its own
}

TEST_CASE("library_destroyedWhileACallIsStuck_thatThreadEndsWhenTheCallReturns", "[pkcs11]") {
  using namespace std::chrono_literals;
  const std::size_t before = thread_count();
  {
    auto lib = faulty_library(200ms);
    const auto& teacher = fixture().credential("teacher");
    auto signer = lib->signer(teacher.credential_id());
    const auto pin = secret(fixture().user_pin);
    signer->authorize({.pin = &pin}, {});
    Faults::set("sign_delay_us", 30'000'000);
    const auto d = digests(1).at(0);
    CHECK_THROWS_AS(signer->sign_digest(SignAlgorithm::RsaPkcs1Sha256, d), kyso::Error);
    CHECK(Faults::get("in.C_Sign") == 1);
  }
  // The Library went while its module was stuck: only the thread in the call is left.
  CHECK(thread_count() == before + 1);
  Faults::set("sign_delay_us", 0);
  CHECK(eventually([&] { return thread_count() == before; }));
  CHECK(Faults::get("in.C_Sign") == 0);
}
