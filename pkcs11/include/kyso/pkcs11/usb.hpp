#pragma once
/// @file
/// USB token detection. Maps what is plugged in (VID:PID) to the PKCS#11 module that drives
/// it, so "my token is not recognised" becomes "ePass2003 found; install opensc-pkcs11".

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace kyso::pkcs11 {

struct KnownToken {
  std::uint16_t vendor_id = 0;
  std::uint16_t product_id = 0;
  std::string vendor;
  std::string model;
  std::vector<std::string> linux_modules;    ///< candidate module paths, most preferred first
  std::vector<std::string> windows_modules;  ///< DLL names
  std::vector<std::string> macos_modules;
  std::string linux_package;  ///< Debian package or vendor installer that provides the module
};

/// The built-in table of tokens Vietnamese CAs issue; firmware-config
/// profiles can replace it.
const std::vector<KnownToken>& builtin_known_tokens();

struct UsbDevice {
  std::uint16_t vendor_id = 0;
  std::uint16_t product_id = 0;
  std::uint8_t bus = 0;
  std::uint8_t address = 0;
};

/// A known token seen on USB, and whether a module for it is installed.
struct UsbTokenStatus {
  UsbDevice device;
  KnownToken token;
  std::optional<std::string> module;  ///< the first installed candidate module
  std::string hint_vi;
  std::string hint_en;
};

void to_json(nlohmann::json& j, const UsbTokenStatus& s);

/// Devices on the USB buses now. Empty (not an error) where libusb cannot see a bus, as in
/// containers.
std::vector<UsbDevice> list_usb_devices();

/// Which of `devices` are known tokens and whether their module is installed. `exists` checks
/// a module path (replaceable so tests can feed a fake inventory).
std::vector<UsbTokenStatus> diagnose_usb(
    std::span<const UsbDevice> devices, std::span<const KnownToken> table,
    const std::function<bool(const std::string&)>& exists = {});

/// Module paths from the table that exist on this machine (for ModuleConfig::use_known).
std::vector<std::string> installed_known_modules(std::span<const KnownToken> table);

struct UsbEvent {
  enum class Kind { Arrived, Left };
  Kind kind = Kind::Arrived;
  UsbDevice device;
  std::optional<UsbTokenStatus> token;  ///< set when the device is a known token
};

/// Watches USB for tokens coming and going: libusb hotplug where the platform has it, polling
/// once a second otherwise. Callbacks run on the watcher's own thread.
class UsbWatcher {
 public:
  using Callback = std::function<void(const UsbEvent&)>;
  UsbWatcher(Callback callback, std::vector<KnownToken> table);
  ~UsbWatcher();
  UsbWatcher(const UsbWatcher&) = delete;
  UsbWatcher& operator=(const UsbWatcher&) = delete;
  UsbWatcher(UsbWatcher&&) = delete;
  UsbWatcher& operator=(UsbWatcher&&) = delete;

  void start();
  void stop() noexcept;
  /// True when libusb hotplug is in use, false when polling.
  [[nodiscard]] bool hotplug() const noexcept { return hotplug_; }

 private:
  struct Impl;
  void emit(UsbEvent::Kind kind, const UsbDevice& d);
  void poll_loop();

  Callback callback_;
  std::vector<KnownToken> table_;
  std::unique_ptr<Impl> impl_;
  std::atomic<bool> running_{false};
  bool hotplug_ = false;
  std::thread thread_;
};

}  // namespace kyso::pkcs11
