// IT's TOML files through the three loaders (firmware-config): kyso-agent.toml, token profiles
// (tokens.toml) and kyso-appliance.toml. Each must either load or throw a located ConfigError
// (an Error(ConfigInvalid)); nothing else.

#include "fuzz_support.hpp"
#include "kyso/core/error.hpp"
#include "kyso/firmware_config/agent_config.hpp"
#include "kyso/firmware_config/appliance_config.hpp"
#include "kyso/firmware_config/token_profiles.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto path = kyso::fuzz::write_file("config.toml", data, size);
  try {
    (void)kyso::firmware_config::load_agent_config(path);
  } catch (const kyso::Error&) {
  }
  try {
    const auto profiles =
        kyso::firmware_config::parse_token_profiles(kyso::fuzz::as_text(data, size), "tokens.toml");
    (void)kyso::firmware_config::to_known_tokens(profiles);
  } catch (const kyso::Error&) {
  }
  try {
    (void)kyso::firmware_config::load_appliance_config(path);
  } catch (const kyso::Error&) {
  }
  return 0;
}
