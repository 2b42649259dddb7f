// The Windows side of kyso/core/platform.hpp and of the PKCS#11 loader, run under Wine
// (tests/windows/CMakeLists.txt).
// clang-format off
#include <winsock2.h>
#include <windows.h>
// clang-format on

#include <boost/asio.hpp>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "kyso/agent/peer.hpp"
#include "kyso/core/error.hpp"
#include "kyso/core/platform.hpp"
#include "kyso/core/secret.hpp"
#include "kyso/pkcs11/library.hpp"

namespace fs = std::filesystem;
using namespace kyso;

namespace {

// A directory of this test's own under the Wine prefix's temp folder.
fs::path scratch(const char* name) {
  const fs::path dir = fs::temp_directory_path() / "kyso-windows-tests" / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

}  // namespace

TEST_CASE("the process runs with UTF-8 as its code page (the manifest)") {
  // kyso.exe and kyso-agent.exe carry installer/windows/utf8.manifest: argv, std::string paths
  // and the C library's narrow functions are UTF-8, not code page 1252.
  CHECK(::GetACP() == CP_UTF8);
}

TEST_CASE("the state directory is %LOCALAPPDATA%\\Kyso, created for this user") {
  const fs::path dir = platform::user_state_dir();
  CHECK(dir.filename() == L"Kyso");
  const wchar_t* local = ::_wgetenv(L"LOCALAPPDATA");
  REQUIRE(local != nullptr);
  CHECK(fs::equivalent(dir.parent_path(), fs::path(local)));
  platform::prepare_private_dir(dir);
  CHECK(fs::is_directory(dir));
  platform::prepare_private_dir(dir);  // again: it exists, nothing to do
}

TEST_CASE("a file is replaced whole, under a Vietnamese name") {
  const fs::path dir = scratch("replace");
  const fs::path file = dir / fs::u8path("gi\xc3\xa1o vi\xc3\xaan.json");  // "giáo viên"
  REQUIRE(platform::replace_file_privately(file, "{\"a\":1}\n"));
  const std::string before = platform::file_stamp(file.string().c_str());
  CHECK_FALSE(before.empty());
  REQUIRE(platform::replace_file_privately(file, "{\"a\":2, \"b\":3}\n"));
  std::ifstream in(file);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK(text == "{\"a\":2, \"b\":3}\n");
  CHECK_FALSE(fs::exists(file.string() + ".tmp"));
  CHECK(platform::file_stamp(file.string().c_str()) != before);
  CHECK(platform::file_stamp((dir / "missing").string().c_str()).empty());
}

TEST_CASE("the program knows its own path and user") {
  CHECK(platform::executable_path().extension() == L".exe");
  CHECK_FALSE(platform::login_name().empty());
}

TEST_CASE("a PIN buffer locks its pages and wipes them") {
  Secret s;
  s.assign("123456");
  CHECK(s.view() == "123456");
  s.wipe();
  CHECK(s.view().empty());
}

TEST_CASE("a library that is not there says why") {
  std::string why;
  CHECK(platform::load_library("C:\\nowhere\\kyso-none.dll", why) == nullptr);
  CHECK_FALSE(why.empty());
}

// The path goes in as UTF-8 text, as a configuration gives it: Module::load makes it a path with
// platform::utf8_path (std::filesystem::path(std::string) would read it in the C library's
// locale on Windows, and the folder would not be found).
TEST_CASE("a Windows PKCS#11 module loads from a folder with a Vietnamese name, 1-byte packed") {
  const char* built = std::getenv("KYSO_TEST_MODULE");
  REQUIRE(built != nullptr);
  // "Thầy cô": LoadLibraryW gets the UTF-16 of the UTF-8 path.
  const fs::path dir = scratch("module") / fs::u8path("Th\xe1\xba\xa7y c\xc3\xb4");
  fs::create_directories(dir);
  const fs::path dll = dir / "kyso-test-pkcs11.dll";
  fs::copy_file(built, dll, fs::copy_options::overwrite_existing);

  pkcs11::ModuleConfig config;
  config.paths = {platform::path_utf8(dll)};
  config.use_p11kit = false;
  config.use_known = false;
  pkcs11::Library library(config);
  const auto modules = library.modules();  // a copy: modules() returns the list by value
  REQUIRE(modules.size() == 1);
  const auto& m = modules.front();
  INFO(m.error);
  REQUIRE(m.loaded);
  CHECK(m.manufacturer == "Kyso test module");
  CHECK(m.description == "Windows th\xe1\xba\xa7y 1-byte");
  CHECK(library.tokens().empty());
}

// Windows answers with the owning process of the peer's socket ("pid N"); Wine 8.0's TCP table
// has owning PID 0 in every row, so under Wine the check asks Linux instead ("uid N (Wine)"),
// which also identifies a Linux client of an agent running under Wine.
TEST_CASE("a loopback connection from this process is this user's; a made-up one is nobody's") {
  namespace net = boost::asio;
  using net::ip::tcp;
  net::io_context io;
  tcp::acceptor acceptor(io, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
  tcp::socket client(io);
  client.connect(acceptor.local_endpoint());
  tcp::socket served = acceptor.accept();
  const auto peer = agent::loopback_peer_user(served.local_endpoint(), served.remote_endpoint());
  INFO(peer.who);
  CHECK(peer.same_user);
  CHECK((peer.who.starts_with("pid ") || peer.who.ends_with(" (Wine)")));
  const auto nobody = agent::loopback_peer_user(
      served.local_endpoint(), tcp::endpoint(net::ip::make_address("127.0.0.1"), 1));
  INFO(nobody.who);
  CHECK_FALSE(nobody.same_user);
  CHECK((nobody.who == "pid unknown" || nobody.who == "uid unknown (Wine)"));
}
