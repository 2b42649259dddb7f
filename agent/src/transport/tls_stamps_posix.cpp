// TlsCertificate::stamps() on POSIX: stat(2)'s device, inode, size and modification time.
// (tls_stamps_windows.cpp on Windows; CMake compiles one of the two.)
#include <sys/stat.h>

#include "tls_certificate.hpp"

namespace kyso::agent::transport {

TlsCertificate::Stamps TlsCertificate::stamps() const {
  const auto one = [](const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return Stamp{};
    return Stamp{st.st_dev, st.st_ino, st.st_size, st.st_mtim};
  };
  return {one(cert_file_), one(key_file_)};
}

}  // namespace kyso::agent::transport
