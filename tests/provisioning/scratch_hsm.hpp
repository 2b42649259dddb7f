#pragma once
// A SoftHSM2 of the test's own: an empty token directory (one blank slot) under a temp dir,
// selected through SOFTHSM2_CONF for this process and the commands it runs. Tests that provision
// tokens use it so they never disturb the fixture's tokens or each other.

#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include "fixture.hpp"
#include "kyso/core/secret.hpp"

namespace kyso::test {

// A SoftHSM2 of our own, empty (one blank slot), selected for this process and its children.
struct ScratchHsm {
  std::filesystem::path dir;
  std::string module;
  std::string pin_file;
  std::string so_pin_file;

  ScratchHsm() {
    const auto& fx = kyso::test::fixture();  // reads the fixture (and its SOFTHSM2_CONF) first
    module = fx.module;
    std::random_device rd;
    dir = std::filesystem::temp_directory_path() /
          ("kyso-prov-" + std::to_string(rd()) + std::to_string(rd()));
    std::filesystem::create_directories(dir / "tokens");
    std::ofstream(dir / "softhsm2.conf") << "directories.tokendir = " << (dir / "tokens").string()
                                         << "\nobjectstore.backend = file\nlog.level = ERROR\n";
    ::setenv("SOFTHSM2_CONF", (dir / "softhsm2.conf").c_str(), 1);
    pin_file = write_secret("pin.txt", "123456");
    so_pin_file = write_secret("so-pin.txt", "12345678");
  }
  ~ScratchHsm() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  ScratchHsm(const ScratchHsm&) = delete;
  ScratchHsm& operator=(const ScratchHsm&) = delete;
  ScratchHsm(ScratchHsm&&) = delete;
  ScratchHsm& operator=(ScratchHsm&&) = delete;

  std::string write_secret(const std::string& name, const std::string& value) const {
    const std::filesystem::path p = dir / name;
    std::ofstream(p) << value;
    ::chmod(p.c_str(), 0600);
    return p.string();
  }
  [[nodiscard]] std::string path(const std::string& name) const { return (dir / name).string(); }
};

inline Secret secret(std::string_view s) {
  Secret out;
  out.assign(s);
  return out;
}

}  // namespace kyso::test
