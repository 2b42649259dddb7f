#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "kyso/core/error.hpp"
#include "kyso/core/secret.hpp"

TEST_CASE("Secret grows within its reserved capacity and wipes", "[core][security]") {
  kyso::Secret s(8);
  s.assign("123456");
  CHECK(s.view() == "123456");
  const unsigned char* before = s.data();
  s.push_back('7');
  CHECK(s.data() == before);  // never reallocated, so never copied
  s.pop_back();
  CHECK(s.view() == "123456");
  s.wipe();
  CHECK(s.empty());
  CHECK(s.data()[0] == 0);
  CHECK_THROWS_AS(s.assign("123456789"), kyso::Error);
}

TEST_CASE("Secret moves without copying the bytes", "[core][security]") {
  kyso::Secret a;
  a.assign("2468");
  const unsigned char* p = a.data();
  kyso::Secret b(std::move(a));
  CHECK(b.data() == p);
  CHECK(b.view() == "2468");
}

TEST_CASE("Secret::from_file reads the first line and refuses a file others can read",
          "[core][security]") {
  const auto dir = std::filesystem::temp_directory_path() / "kyso-secret-test";
  std::filesystem::create_directories(dir);
  const auto file = dir / "pin.txt";
  { std::ofstream(file) << "654321\nignored\n"; }
  ::chmod(file.c_str(), 0644);
  try {
    (void)kyso::Secret::from_file(file);
    FAIL("a world-readable PIN file was accepted");
  } catch (const kyso::Error& e) {
    CHECK(e.code() == kyso::ErrorCode::BadRequest);
  }
  ::chmod(file.c_str(), 0600);
  CHECK(kyso::Secret::from_file(file).view() == "654321");
  std::filesystem::remove_all(dir);
}
