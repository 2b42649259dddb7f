// activation.hpp where there is no systemd (Windows): the agent always binds its own sockets.
#include "activation.hpp"

namespace kyso::agent::detail {

std::vector<ActivatedSocket> activated_sockets(std::uint16_t& /*port*/) {
  return {};
}

}  // namespace kyso::agent::detail
