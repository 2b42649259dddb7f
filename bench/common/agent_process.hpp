#pragma once
// kyso-agent as a child process, as users run it: started with its command line, its port read
// from the line it prints, stopped with SIGTERM. Header-only, shared by bench/agent and
// bench/remote.

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <array>
#include <cstdint>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

extern "C" char** environ;

namespace kyso::bench {

class AgentProcess {
 public:
  /// `args` is the whole command line, program first (a profiler in front of it is fine).
  explicit AgentProcess(std::vector<std::string> args) {
    std::array<int, 2> out{};
    if (::pipe(out.data()) != 0) throw std::runtime_error("pipe");
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&fa, out[0]);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const int rc = ::posix_spawnp(&pid_, argv[0], &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    ::close(out[1]);
    if (rc != 0) {
      ::close(out[0]);
      pid_ = -1;
      throw std::runtime_error("cannot start " + args.front());
    }
    // The agent prints where it listens ("... 127.0.0.1:PORT") once it accepts connections.
    std::string line;
    char c = 0;
    while (::read(out[0], &c, 1) == 1 && c != '\n') line.push_back(c);
    ::close(out[0]);
    const auto colon = line.rfind(':');
    if (colon == std::string::npos) throw std::runtime_error("kyso-agent did not start: " + line);
    port_ = static_cast<std::uint16_t>(std::stoi(line.substr(colon + 1)));
  }
  ~AgentProcess() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      int st = 0;
      ::waitpid(pid_, &st, 0);
    }
  }
  AgentProcess(const AgentProcess&) = delete;
  AgentProcess& operator=(const AgentProcess&) = delete;
  AgentProcess(AgentProcess&&) = delete;
  AgentProcess& operator=(AgentProcess&&) = delete;

  [[nodiscard]] std::uint16_t port() const noexcept { return port_; }
  [[nodiscard]] pid_t pid() const noexcept { return pid_; }

  /// The CPU clock of the whole process (all its threads, live and ended).
  [[nodiscard]] clockid_t cpu_clock() const {
    clockid_t c{};
    if (::clock_getcpuclockid(pid_, &c) != 0) throw std::runtime_error("clock_getcpuclockid");
    return c;
  }

  /// VmRSS in MB (-1 when it cannot be read).
  [[nodiscard]] double rss_mb() const {
    std::ifstream in("/proc/" + std::to_string(pid_) + "/status");
    for (std::string l; std::getline(in, l);) {
      if (l.starts_with("VmRSS:")) return std::stod(l.substr(6)) / 1024.0;
    }
    return -1;
  }

 private:
  pid_t pid_ = -1;
  std::uint16_t port_ = 0;
};

}  // namespace kyso::bench
