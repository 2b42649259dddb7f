#include <catch2/catch.hpp>
#include <set>
#include <string>

#include "kyso/core/error.hpp"

using kyso::ErrorCode;

TEST_CASE("every error code has a unique wire name and a message in both languages", "[core]") {
  std::set<std::string> names;
  for (int i = 0; i <= static_cast<int>(ErrorCode::OutputExists); ++i) {
    const auto code = static_cast<ErrorCode>(i);
    const std::string name(kyso::code_name(code));
    INFO("code " << i << " = " << name);
    CHECK(names.insert(name).second);
    CHECK(kyso::code_from_name(name) == code);
    CHECK_FALSE(kyso::message(code, kyso::Language::Vi).empty());
    CHECK_FALSE(kyso::message(code, kyso::Language::En).empty());
    CHECK(kyso::message(code, kyso::Language::Vi) != kyso::message(code, kyso::Language::En));
  }
}

TEST_CASE("errors keep code, detail and PKCS#11 payload; retriable vs fatal", "[core]") {
  const kyso::Error e(ErrorCode::PinIncorrect, "C_Login returned CKR_PIN_INCORRECT", 0xa0,
                      "C_Login");
  CHECK(e.name() == "PIN_INCORRECT");
  CHECK(e.ck_rv() == 0xa0UL);
  CHECK(e.call() == "C_Login");
  CHECK(e.retriable());
  CHECK_FALSE(kyso::Error(ErrorCode::PinLocked, "").retriable());
  CHECK(kyso::is_retriable(ErrorCode::TokenRemoved));
  CHECK(std::string(e.what()).find("PIN_INCORRECT") != std::string::npos);
  CHECK(kyso::message(ErrorCode::PinLocked, kyso::Language::Vi).find("khóa") != std::string::npos);
  CHECK_FALSE(kyso::code_from_name("NO_SUCH_CODE").has_value());
}
