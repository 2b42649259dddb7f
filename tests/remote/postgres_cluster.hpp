#pragma once
// A throw-away PostgreSQL cluster for the appliance's tests: Debian's initdb + pg_ctl in a temp
// dir, on a free loopback port, run by the unprivileged account "nobody" when the tests run as
// root (CI does; PostgreSQL refuses root). Made once per process and stopped at its exit.

#include <string>

namespace kyso::test::remote {

class PgCluster {
 public:
  /// The process's cluster, started on first use.
  static PgCluster& get();
  ~PgCluster();
  PgCluster(const PgCluster&) = delete;
  PgCluster& operator=(const PgCluster&) = delete;
  PgCluster(PgCluster&&) = delete;
  PgCluster& operator=(PgCluster&&) = delete;

  /// A fresh database, migrated by the owner with the nodes' role granted; returns the URL the
  /// appliance nodes use (the unprivileged role "kyso_app").
  std::string new_database();
  /// The owner's URL of a database made by new_database() (to tamper with it in tests).
  [[nodiscard]] std::string admin_url(const std::string& app_url) const;
  /// Runs one SQL statement with psql on `url`: {exit code, output}.
  [[nodiscard]] std::pair<int, std::string> psql(const std::string& url,
                                                 const std::string& sql) const;
  /// Stops the server (fast shutdown: open connections are cut) / starts it again.
  void stop();
  void start();
  [[nodiscard]] int port() const { return port_; }

 private:
  PgCluster();
  std::string as_owner(const std::string& cmd) const;
  std::string dir_;
  std::string bin_;
  int port_ = 0;
  int databases_ = 0;
  bool running_ = false;
};

/// Whether this test process runs the appliance on PostgreSQL (KYSO_TEST_STATE=postgresql).
bool on_postgres();

}  // namespace kyso::test::remote
