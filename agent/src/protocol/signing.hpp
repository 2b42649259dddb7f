#pragma once
// sign, batch.sign, batch.items, batch.cancel (signing.cpp): the connection's batches.

#include <atomic>
#include <cstddef>
#include <deque>
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

/// What a connection keeps of its batches: the ones collecting items or running, by id (the id's
/// JSON text), and the ids of the latest ended ones, to refuse those ids again and answer
/// batch.items and batch.cancel about them. A page may stay connected all day: what it keeps of
/// ended batches is bounded.
struct Batches {
  static constexpr std::size_t kEndedKept = 256;
  std::map<std::string, std::shared_ptr<Batch>> by_id;
  std::deque<std::string> ended;  ///< oldest first
};

}  // namespace kyso::agent::protocol
