#pragma once
// The agent's wss:// certificate and key, as files kyso-local-tls keeps up to date: a renewal
// (825 days) or a new desktop user replaces every user's certificate under a new local CA and
// takes the old CA's trust away, so a running agent must serve the new files from its next
// connection on, without waiting for a restart.

#include <sys/types.h>

#include <boost/asio/ssl/context.hpp>
#include <ctime>
#include <memory>
#include <mutex>
#include <string>

namespace kyso::agent::transport {

class TlsCertificate {
 public:
  /// Loads both files. Throws Error(ConfigInvalid) when they cannot be used.
  TlsCertificate(std::string cert_file, std::string key_file);

  /// The context for a new connection. When either file changed since the last load, they are
  /// loaded again first; when the new files cannot be used (a half-written renewal), the
  /// previous context goes on serving and the failure is logged once per change. Connections
  /// keep the context they started with alive. Any thread.
  [[nodiscard]] std::shared_ptr<boost::asio::ssl::context> current();

 private:
  struct Stamp {
    dev_t dev = 0;
    ino_t ino = 0;
    off_t size = 0;
    timespec mtime{};
    bool operator==(const Stamp& o) const noexcept;
  };
  struct Stamps {
    Stamp cert;
    Stamp key;
    bool operator==(const Stamps& o) const noexcept = default;
  };
  [[nodiscard]] Stamps stamps() const;
  [[nodiscard]] std::shared_ptr<boost::asio::ssl::context> load(std::string& error) const;

  const std::string cert_file_;
  const std::string key_file_;
  std::mutex mutex_;
  std::shared_ptr<boost::asio::ssl::context> context_;
  Stamps loaded_;  ///< the files context_ was made from
  Stamps tried_;   ///< the files last tried, so a bad pair is reported once
};

}  // namespace kyso::agent::transport
