#pragma once
/// @file
/// A helper program on two pipes (pinentry): the same seam as kyso/core/platform.hpp (issue 18,
/// docs/windows.md) in a header of its own; core/src/platform/posix.cpp and windows.cpp
/// implement it.

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

namespace kyso::platform {

/// A program started with a pipe to its stdin and one from its stdout, its stderr the caller's,
/// and nothing else of this process's (sockets, module files) inherited: posix_spawnp, or
/// CreateProcessW with only the pipes' ends in its handle list. `program` is a path or a name
/// looked up in PATH. The destructor closes both pipes, gives the program 100 ms to exit on
/// its own, then kills it, and reaps it.
class ChildProcess {
 public:
  /// Throws Error(Internal) when it cannot be started.
  explicit ChildProcess(const std::string& program);
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ChildProcess(ChildProcess&&) = delete;
  ChildProcess& operator=(ChildProcess&&) = delete;

  /// Writes all of `data` to its stdin; false when it closed it.
  bool write_all(std::string_view data) noexcept;
  /// Waits at most `timeout` for its stdout to have bytes (or to end): true when read_some
  /// will not block, false when the time ran out.
  bool wait_readable(std::chrono::milliseconds timeout) noexcept;
  /// Reads what its stdout has, at most `size` bytes: how many, 0 at its end, -1 on error.
  long read_some(char* data, std::size_t size) noexcept;

 private:
  struct State;  // each implementation's own
  std::unique_ptr<State> state_;
};

}  // namespace kyso::platform
