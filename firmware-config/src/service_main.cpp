#include "kyso/firmware_config/service_main.hpp"

#include <cstdio>
#include <exception>
#include <fstream>

#include "kyso/core/error.hpp"
#include "kyso/core/platform.hpp"
#include "kyso/firmware_config/config_error.hpp"

namespace kyso::firmware_config {

int run_service_main(const char* program, const std::function<int()>& body) {
  platform::limit_heap_arenas();  // a service runs for months: its RSS must not creep
  try {
    return body();
  } catch (const ConfigError& e) {
    // IT reads this in the journal: where the mistake is, in both languages.
    std::fprintf(stderr, "%s: %s\n  %s\n", program, e.located(Language::En).c_str(),
                 e.located(Language::Vi).c_str());
  } catch (const Error& e) {
    std::fprintf(stderr, "%s: %s: %s\n  %s\n", program, std::string(e.name()).c_str(),
                 e.detail().c_str(), std::string(e.message(Language::En)).c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", program, e.what());
  }
  return 1;
}

void serve_until_signal(const char* program, const std::function<std::uint16_t()>& start,
                        const std::function<void()>& stop, const std::string& port_file) {
  // Signals go to wait() below, not to whichever thread happens to run.
  platform::StopRequests stop_requests;
  const std::uint16_t port = start();
  std::fprintf(stderr, "%s: listening on port %u\n", program, port);
  if (!port_file.empty()) {
    const std::string tmp = port_file + ".tmp";
    std::ofstream(tmp) << port << "\n";
    std::rename(tmp.c_str(), port_file.c_str());
  }
  const std::string why = stop_requests.wait();
  std::fprintf(stderr, "%s: %s, stopping\n", program, why.c_str());
  stop();
}

}  // namespace kyso::firmware_config
