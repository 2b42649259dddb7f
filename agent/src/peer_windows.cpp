// kyso/agent/peer.hpp on Windows: the peer socket's owning process from the TCP table, and
// that process's user (its token's SID) against ours. Under Wine, whose table has no owning
// processes and whose peers may be Linux programs, the Linux check through Wine's Z: drive:
// the peer socket's uid in /proc/net/tcp{,6} (find_socket_uid, peer_table.cpp) against this
// process's Unix uid.
// clang-format off
#include <winsock2.h>
#include <ws2tcpip.h>
#include <windows.h>
#include <iphlpapi.h>
// clang-format on

#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <vector>

#include "kyso/agent/peer.hpp"

namespace kyso::agent {
namespace {

using boost::asio::ip::tcp;

// The table's ports are in network byte order in the low 16 bits of a DWORD.
DWORD table_port(unsigned short port) {
  return ::htons(port);
}

/// The owning PID of the TCP socket whose local end is `local` and remote end `remote`
/// (0 when there is none).
DWORD owning_pid(const tcp::endpoint& local, const tcp::endpoint& remote) {
  const bool v4 = local.address().is_v4();
  const ULONG family = v4 ? AF_INET : AF_INET6;
  std::vector<unsigned char> buf(16384);
  for (int attempt = 0; attempt < 4; ++attempt) {
    DWORD size = static_cast<DWORD>(buf.size());
    const DWORD rc =
        ::GetExtendedTcpTable(buf.data(), &size, FALSE, family, TCP_TABLE_OWNER_PID_CONNECTIONS, 0);
    if (rc == ERROR_INSUFFICIENT_BUFFER) {
      buf.resize(size + 4096);  // connections come and go between the two calls
      continue;
    }
    if (rc != NO_ERROR) return 0;
    if (v4) {
      const auto* table = reinterpret_cast<const MIB_TCPTABLE_OWNER_PID*>(buf.data());
      const auto l = local.address().to_v4().to_bytes();
      const auto r = remote.address().to_v4().to_bytes();
      for (DWORD i = 0; i < table->dwNumEntries; ++i) {
        const auto& row = table->table[i];
        if (std::memcmp(&row.dwLocalAddr, l.data(), 4) == 0 &&
            std::memcmp(&row.dwRemoteAddr, r.data(), 4) == 0 &&
            row.dwLocalPort == table_port(local.port()) &&
            row.dwRemotePort == table_port(remote.port())) {
          return row.dwOwningPid;
        }
      }
    } else {
      const auto* table = reinterpret_cast<const MIB_TCP6TABLE_OWNER_PID*>(buf.data());
      const auto l = local.address().to_v6().to_bytes();
      const auto r = remote.address().to_v6().to_bytes();
      for (DWORD i = 0; i < table->dwNumEntries; ++i) {
        const auto& row = table->table[i];
        if (std::memcmp(row.ucLocalAddr, l.data(), 16) == 0 &&
            std::memcmp(row.ucRemoteAddr, r.data(), 16) == 0 &&
            row.dwLocalPort == table_port(local.port()) &&
            row.dwRemotePort == table_port(remote.port())) {
          return row.dwOwningPid;
        }
      }
    }
    return 0;
  }
  return 0;
}

struct HandleCloser {
  void operator()(HANDLE h) const noexcept { ::CloseHandle(h); }
};
using Handle = std::unique_ptr<void, HandleCloser>;

/// The user SID of a process's token, as TOKEN_USER bytes (empty when it cannot be read).
std::vector<unsigned char> token_user(HANDLE process) {
  HANDLE token = nullptr;
  if (!::OpenProcessToken(process, TOKEN_QUERY, &token)) return {};
  const Handle guard(token);
  DWORD size = 0;
  ::GetTokenInformation(token, TokenUser, nullptr, 0, &size);
  if (size == 0) return {};
  std::vector<unsigned char> buf(size);
  if (!::GetTokenInformation(token, TokenUser, buf.data(), size, &size)) return {};
  return buf;
}

PSID sid_of(std::vector<unsigned char>& token_user_bytes) {
  return reinterpret_cast<TOKEN_USER*>(token_user_bytes.data())->User.Sid;
}

/// Wine's ntdll exports its version; Windows' does not.
bool under_wine() {
  const HMODULE ntdll = ::GetModuleHandleW(L"ntdll.dll");
  return ntdll != nullptr && ::GetProcAddress(ntdll, "wine_get_version") != nullptr;
}

/// A file of the Unix side under Wine, through its Z: drive (the Unix root).
std::string unix_file(const char* path) {
  std::ifstream in(std::string("Z:") + path, std::ios::binary);
  if (!in) return {};
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

/// This process's real Unix uid under Wine (the Uid: line of /proc/self/status).
std::optional<unsigned> wine_unix_uid() {
  std::istringstream in(unix_file("/proc/self/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("Uid:", 0) != 0) continue;
    std::istringstream fields(line.substr(4));
    unsigned uid = 0;
    if (fields >> uid) return uid;
    return std::nullopt;
  }
  return std::nullopt;
}

/// Linux's answer from inside Wine: the uid owning the peer's socket in /proc/net/tcp{,6},
/// whether the peer is a Wine process or a Linux one, against our own Unix uid.
PeerUser wine_peer_user(const tcp::endpoint& local, const tcp::endpoint& remote) {
  const std::string table =
      unix_file(remote.address().is_v4() ? "/proc/net/tcp" : "/proc/net/tcp6");
  const auto uid = find_socket_uid(table, remote, local);
  const auto ours = wine_unix_uid();
  return {uid && ours && *uid == *ours,
          "uid " + (uid ? std::to_string(*uid) : "unknown") + " (Wine)"};
}

}  // namespace

PeerUser loopback_peer_user(const tcp::endpoint& local, const tcp::endpoint& remote) {
  // The peer's own socket has the peer's address as its local end.
  const DWORD pid = owning_pid(remote, local);
  // Wine 8.0 gives every row owning PID 0, and a Linux peer has no Windows process at all.
  if (pid == 0 && under_wine()) return wine_peer_user(local, remote);
  if (pid == 0) return {false, "pid unknown"};
  const std::string who = "pid " + std::to_string(pid);
  const Handle process(::OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, FALSE, pid));
  // Another user's process cannot be opened by a standard user: not ours either way.
  if (!process) return {false, who + " (not readable)"};
  auto theirs = token_user(process.get());
  auto ours = token_user(::GetCurrentProcess());
  if (theirs.empty() || ours.empty()) return {false, who + " (no token)"};
  if (!::EqualSid(sid_of(theirs), sid_of(ours))) return {false, who + " of another user"};
  return {true, who};
}

}  // namespace kyso::agent
