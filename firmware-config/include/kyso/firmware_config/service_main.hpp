#pragma once
/// @file
/// What the mains of Kyso's system services (kyso-appliance, kyso-verifyd) share: turning what
/// they throw into an exit code and a message IT can act on in the journal, and serving until
/// systemd (or Ctrl-C) asks them to stop.

#include <cstdint>
#include <functional>
#include <string>

namespace kyso::firmware_config {

/// Runs `body` and returns its exit code; anything it throws becomes exit code 1 and one message
/// on stderr, prefixed with `program`: a ConfigError located (file:line:column: key) in English
/// and Vietnamese, a kyso::Error with its code, detail and English message.
int run_service_main(const char* program, const std::function<int()>& body);

/// Serves until SIGINT or SIGTERM: blocks both signals (before `start` makes any thread, so
/// every thread inherits the mask), calls `start` (which returns the bound port), writes the port
/// to `port_file` when given (temp file + rename: readers never see half of it), waits for a
/// signal and calls `stop`.
void serve_until_signal(const char* program, const std::function<std::uint16_t()>& start,
                        const std::function<void()>& stop, const std::string& port_file);

/// serve_until_signal for a service made by `make()` (a std::unique_ptr to something with
/// start(), port() and stop()), made once the signals are blocked; returns 0 for main.
template <typename Make>
int serve_made_until_signal(const char* program, Make make, const std::string& port_file) {
  decltype(make()) service;
  serve_until_signal(
      program,
      [&] {
        service = make();
        service->start();
        return service->port();
      },
      [&] { service->stop(); }, port_file);
  return 0;
}

}  // namespace kyso::firmware_config
