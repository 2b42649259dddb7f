#pragma once
// sign, batch.sign, batch.items, batch.cancel (signing.cpp): the connection's batches.

#include <atomic>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "kyso/agent/service.hpp"
#include "wire.hpp"

namespace kyso::agent::protocol {

/// A batch announced by batch.sign: collecting its items, running, or done (its id stays to
/// refuse items beyond the approval).
struct Batch {
  nlohmann::json id;
  SignJob job;
  std::size_t total = 0;
  wire::ProgressOptions progress;
  enum class State { Collecting, Running, Done } state = State::Collecting;
  std::shared_ptr<std::atomic<bool>> cancel = std::make_shared<std::atomic<bool>>(false);
};

/// The connection's batches by id (the id's JSON text).
struct Batches {
  std::map<std::string, std::shared_ptr<Batch>> by_id;
};

}  // namespace kyso::agent::protocol
