#pragma once
// The PostgreSQL state backend (several appliance nodes sharing one database), through libpq.

#include <memory>
#include <string>

#include "kyso/appliance/state_store.hpp"

namespace kyso::appliance {

/// Connects (a small pool of connections); migrates when `migrate`, else refuses a database whose
/// schema is older than this build's. Throws Error(ConfigInvalid) when it cannot connect.
std::unique_ptr<StateStore> open_postgres_store(const std::string& url, bool migrate);

/// Runs the migrations as the database's owner and lets `role` (the nodes' login, if not empty)
/// use the tables: everything on the state tables, only SELECT and INSERT on the audit log.
/// Returns the schema version reached.
int migrate_postgres(const std::string& url, const std::string& role);

}  // namespace kyso::appliance
