// TlsCertificate::stamps() on Windows: the file's size and last write time (100 ns steps);
// a replaced file shows as changed through them. (tls_stamps_posix.cpp on POSIX.)
#include "tls_certificate.hpp"
// after Asio's winsock2.h
#include <windows.h>

#include <string>

namespace kyso::agent::transport {

TlsCertificate::Stamps TlsCertificate::stamps() const {
  const auto one = [](const std::string& path) {
    const int n = ::MultiByteToWideChar(CP_UTF8, 0, path.c_str(), -1, nullptr, 0);
    if (n <= 0) return Stamp{};
    std::wstring wide(static_cast<std::size_t>(n), L'\0');
    ::MultiByteToWideChar(CP_UTF8, 0, path.c_str(), -1, wide.data(), n);
    WIN32_FILE_ATTRIBUTE_DATA a{};
    if (!::GetFileAttributesExW(wide.c_str(), GetFileExInfoStandard, &a)) return Stamp{};
    const unsigned long long written =
        (static_cast<unsigned long long>(a.ftLastWriteTime.dwHighDateTime) << 32U) |
        a.ftLastWriteTime.dwLowDateTime;
    Stamp s{};
    s.size = static_cast<off_t>(a.nFileSizeLow);
    s.mtime.tv_sec = static_cast<decltype(s.mtime.tv_sec)>(written / 10000000ULL);
    s.mtime.tv_nsec = static_cast<long>((written % 10000000ULL) * 100ULL);
    return s;
  };
  return {one(cert_file_), one(key_file_)};
}

}  // namespace kyso::agent::transport
