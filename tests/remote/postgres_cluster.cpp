#include "postgres_cluster.hpp"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <stdexcept>

#include "fixture.hpp"
#include "kyso/appliance/state_store.hpp"

namespace kyso::test::remote {
namespace fs = std::filesystem;

namespace {

void must(const std::string& cmd) {
  const auto [rc, out] = run(cmd + " 2>&1");
  if (rc != 0) throw std::runtime_error("failed (" + std::to_string(rc) + "): " + cmd + "\n" + out);
}

}  // namespace

bool on_postgres() {
  const char* v = std::getenv("KYSO_TEST_STATE");
  return v != nullptr && std::string(v) == "postgresql";
}

PgCluster& PgCluster::get() {
  static PgCluster cluster;
  return cluster;
}

std::string PgCluster::as_owner(const std::string& cmd) const {
  return ::geteuid() == 0 ? "runuser -u nobody -- " + cmd : cmd;
}

PgCluster::PgCluster() {
  const auto [rc, bin] = run("ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1");
  bin_ = bin.substr(0, bin.find('\n'));
  if (rc != 0 || bin_.empty()) throw std::runtime_error("PostgreSQL is not installed");
  std::string tmpl = (fs::temp_directory_path() / "kyso-pg.XXXXXX").string();
  if (mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  dir_ = tmpl;
  if (::geteuid() == 0) must("chown nobody: " + dir_);
  must(as_owner(bin_ + "/initdb --no-sync -A trust -E UTF8 -U kyso_admin -D " + dir_ + "/data"));
  start();
  must(bin_ + "/psql -q -v ON_ERROR_STOP=1 postgresql://kyso_admin@127.0.0.1:" +
       std::to_string(port_) + "/postgres -c 'CREATE ROLE kyso_app LOGIN'");
}

PgCluster::~PgCluster() {
  if (running_)
    (void)run(as_owner(bin_ + "/pg_ctl -D " + dir_ + "/data -m immediate stop") +
              " >/dev/null 2>&1");
  std::error_code ec;
  fs::remove_all(dir_, ec);
}

void PgCluster::start() {
  for (int attempt = 0;; ++attempt) {
    if (port_ == 0 || attempt > 0) port_ = free_loopback_port();
    // fsync off: a test cluster, stopped cleanly or thrown away.
    const auto [rc, out] =
        run(as_owner(bin_ + "/pg_ctl -D " + dir_ + "/data -l " + dir_ + "/log -w -t 120 -o \"-p " +
                     std::to_string(port_) + " -k " + dir_ +
                     " -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300\" start") +
            " 2>&1");
    if (rc == 0) break;
    if (attempt == 2) throw std::runtime_error("pg_ctl start failed:\n" + out);
  }
  running_ = true;
}

void PgCluster::stop() {
  must(as_owner(bin_ + "/pg_ctl -D " + dir_ + "/data -m fast -w stop"));
  running_ = false;
}

std::string PgCluster::new_database() {
  const std::string name = "kyso_" + std::to_string(++databases_);
  const std::string base = "postgresql://kyso_admin@127.0.0.1:" + std::to_string(port_) + "/";
  must(bin_ + "/psql -q -v ON_ERROR_STOP=1 " + base + "postgres -c 'CREATE DATABASE " + name + "'");
  kyso::appliance::migrate_state_store(base + name, "kyso_app");
  return "postgresql://kyso_app@127.0.0.1:" + std::to_string(port_) + "/" + name;
}

std::string PgCluster::admin_url(const std::string& app_url) const {
  std::string u = app_url;
  u.replace(u.find("kyso_app@"), 9, "kyso_admin@");
  return u;
}

std::pair<int, std::string> PgCluster::psql(const std::string& url, const std::string& sql) const {
  return run(bin_ + "/psql -q -v ON_ERROR_STOP=1 -At " + url + " -c \"" + sql + "\" 2>&1");
}

}  // namespace kyso::test::remote
