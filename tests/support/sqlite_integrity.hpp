#pragma once
// What SQLite's own `PRAGMA integrity_check` says of a database file: "ok" when no page or row
// is torn. For the crash tests (the agent's audit log, the appliance's state store); the test
// links SQLite::SQLite3.

#include <sqlite3.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <string>

namespace kyso::test {

inline std::string sqlite_integrity(const std::filesystem::path& db) {
  sqlite3* h = nullptr;
  REQUIRE(sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READWRITE, nullptr) == SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  REQUIRE(sqlite3_prepare_v2(h, "PRAGMA integrity_check", -1, &st, nullptr) == SQLITE_OK);
  std::string out;
  while (sqlite3_step(st) == SQLITE_ROW) {
    out += reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
  }
  sqlite3_finalize(st);
  sqlite3_close(h);
  return out;
}

}  // namespace kyso::test
