#pragma once
// A program the remote tests start as a process of its own (kyso-appliance, HAProxy): its output
// in a log file, SIGTERM (or the signal given to stop()) and reaped on destruction.

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

extern char** environ;

namespace kyso::test::remote {

class Child {
 public:
  Child(const std::vector<std::string>& argv, const std::vector<std::string>& env_extra,
        const std::string& log) {
    // env_extra replaces variables of the same name (getenv finds the first one).
    std::vector<std::string> env_strings = env_extra;
    for (char** e = environ; *e != nullptr; ++e) {
      const std::string_view var(*e);
      const bool replaced = std::any_of(env_extra.begin(), env_extra.end(), [&](const auto& x) {
        return var.substr(0, var.find('=') + 1) == x.substr(0, x.find('=') + 1);
      });
      if (!replaced) env_strings.emplace_back(var);
    }
    std::vector<char*> args;
    std::vector<char*> envp;
    std::vector<std::string> argv_copy = argv;
    for (auto& a : argv_copy) args.push_back(a.data());
    args.push_back(nullptr);
    for (auto& e : env_strings) envp.push_back(e.data());
    envp.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    const int rc = posix_spawn(&pid_, args[0], &fa, nullptr, args.data(), envp.data());
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) throw std::runtime_error("cannot start " + argv[0]);
  }
  ~Child() { stop(SIGTERM); }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  Child(Child&&) = delete;
  Child& operator=(Child&&) = delete;
  void stop(int sig) {
    if (pid_ <= 0) return;
    ::kill(pid_, sig);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = 0;
  }
  [[nodiscard]] pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = 0;
};

/// The port a kyso-appliance started with --port-file wrote (waits up to 60 s).
inline std::uint16_t wait_port_file(const std::string& file) {
  for (int i = 0; i < 600; ++i) {
    std::ifstream in(file);
    int port = 0;
    if (in >> port && port > 0) return static_cast<std::uint16_t>(port);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  throw std::runtime_error("no port in " + file);
}

}  // namespace kyso::test::remote
