#pragma once
/// @file
/// The command line of Kyso's system services (kyso-appliance, kyso-verifyd) through CLI11, as
/// the kyso command and the benchmarks read theirs, with one way to answer a mistake in it.

#include <CLI/CLI.hpp>
#include <cstdio>
#include <optional>

namespace kyso::firmware_config {

/// Parses `argv` into `app`. `--help` and `--version` print to stdout and give exit code 0; a
/// mistake (an unknown option or command, a missing or wrong value) is said on stderr in
/// Vietnamese and English, with CLI11's own words and a pointer to --help, and gives exit code
/// 2, as these programs always answered one. nullopt: go on with the parsed options.
inline std::optional<int> parse_service_args(CLI::App& app, int argc, char** argv) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr,
                 "%s: dòng lệnh không hợp lệ / invalid command line: %s\n"
                 "Xem %s --help / see %s --help\n",
                 app.get_name().c_str(), e.what(), app.get_name().c_str(), app.get_name().c_str());
    return 2;
  }
  return std::nullopt;
}

}  // namespace kyso::firmware_config
