#include <libusb.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "kyso/pkcs11/usb.hpp"

namespace kyso::pkcs11 {
namespace {

std::string vid_pid(const UsbDevice& d) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04x:%04x", d.vendor_id, d.product_id);
  return buf;
}

bool same_device(const UsbDevice& a, const UsbDevice& b) {
  return a.vendor_id == b.vendor_id && a.product_id == b.product_id && a.bus == b.bus &&
         a.address == b.address;
}

std::vector<UsbDevice> list_with(libusb_context* ctx) {
  std::vector<UsbDevice> out;
  libusb_device** list = nullptr;
  const ssize_t n = libusb_get_device_list(ctx, &list);
  for (ssize_t i = 0; i < n; ++i) {
    libusb_device_descriptor desc{};
    if (libusb_get_device_descriptor(list[i], &desc) != 0) continue;
    out.push_back({desc.idVendor, desc.idProduct, libusb_get_bus_number(list[i]),
                   libusb_get_device_address(list[i])});
  }
  if (list != nullptr) libusb_free_device_list(list, 1);
  return out;
}

}  // namespace

void to_json(nlohmann::json& j, const UsbTokenStatus& s) {
  j = {{"vidPid", vid_pid(s.device)},
       {"bus", s.device.bus},
       {"address", s.device.address},
       {"vendor", s.token.vendor},
       {"model", s.token.model},
       {"moduleInstalled", s.module.has_value()},
       {"module", s.module ? nlohmann::json(*s.module) : nlohmann::json(nullptr)},
       {"package", s.token.linux_package},
       {"hintVi", s.hint_vi},
       {"hintEn", s.hint_en}};
}

std::vector<UsbDevice> list_usb_devices() {
  libusb_context* ctx = nullptr;
  if (libusb_init(&ctx) != 0) return {};
  auto out = list_with(ctx);
  libusb_exit(ctx);
  return out;
}

std::vector<UsbTokenStatus> diagnose_usb(std::span<const UsbDevice> devices,
                                         std::span<const KnownToken> table,
                                         const std::function<bool(const std::string&)>& exists) {
  auto file_exists = [&](const std::string& p) {
    if (exists) return exists(p);
    std::error_code ec;
    return std::filesystem::exists(p, ec);
  };
  std::vector<UsbTokenStatus> out;
  for (const auto& d : devices) {
    const auto it = std::ranges::find_if(table, [&](const KnownToken& t) {
      return t.vendor_id == d.vendor_id && t.product_id == d.product_id;
    });
    if (it == table.end()) continue;
    UsbTokenStatus s{
        .device = d, .token = *it, .module = std::nullopt, .hint_vi = {}, .hint_en = {}};
    for (const auto& m : it->linux_modules) {
      if (file_exists(m)) {
        s.module = m;
        break;
      }
    }
    const std::string name = it->vendor + " " + it->model + " (" + vid_pid(d) + ")";
    if (s.module) {
      s.hint_vi = "Đã thấy " + name + ", dùng thư viện " + *s.module + ".";
      s.hint_en = name + " found, using module " + *s.module + ".";
    } else {
      s.hint_vi = "Đã thấy " + name + " nhưng chưa cài phần mềm điều khiển. Hãy cài " +
                  it->linux_package + ".";
      s.hint_en = name + " found but its PKCS#11 module is not installed. Install " +
                  it->linux_package + ".";
    }
    out.push_back(std::move(s));
  }
  return out;
}

struct UsbWatcher::Impl {
  libusb_context* ctx = nullptr;
  libusb_hotplug_callback_handle handle = 0;
  std::vector<UsbDevice> last;
};

UsbWatcher::UsbWatcher(Callback callback, std::vector<KnownToken> table)
    : callback_(std::move(callback)), table_(std::move(table)), impl_(std::make_unique<Impl>()) {}

UsbWatcher::~UsbWatcher() {
  stop();
}

void UsbWatcher::emit(UsbEvent::Kind kind, const UsbDevice& d) {
  UsbEvent ev{.kind = kind, .device = d, .token = std::nullopt};
  const std::array one{d};
  auto diag = diagnose_usb(one, table_);
  if (!diag.empty()) ev.token = std::move(diag.front());
  if (callback_) callback_(ev);
}

void UsbWatcher::start() {
  if (running_.exchange(true)) return;
  if (libusb_init(&impl_->ctx) != 0) impl_->ctx = nullptr;
  hotplug_ = impl_->ctx != nullptr && libusb_has_capability(LIBUSB_CAP_HAS_HOTPLUG) != 0;
  if (hotplug_) {
    auto on_hotplug = [](libusb_context*, libusb_device* dev, libusb_hotplug_event event,
                         void* user) -> int {
      auto* self = static_cast<UsbWatcher*>(user);
      libusb_device_descriptor desc{};
      if (libusb_get_device_descriptor(dev, &desc) == 0) {
        const UsbDevice d{desc.idVendor, desc.idProduct, libusb_get_bus_number(dev),
                          libusb_get_device_address(dev)};
        self->emit(event == LIBUSB_HOTPLUG_EVENT_DEVICE_ARRIVED ? UsbEvent::Kind::Arrived
                                                                : UsbEvent::Kind::Left,
                   d);
      }
      return 0;  // keep the callback registered
    };
    const int rc = libusb_hotplug_register_callback(
        impl_->ctx,
        static_cast<libusb_hotplug_event>(LIBUSB_HOTPLUG_EVENT_DEVICE_ARRIVED |
                                          LIBUSB_HOTPLUG_EVENT_DEVICE_LEFT),
        LIBUSB_HOTPLUG_NO_FLAGS, LIBUSB_HOTPLUG_MATCH_ANY, LIBUSB_HOTPLUG_MATCH_ANY,
        LIBUSB_HOTPLUG_MATCH_ANY, on_hotplug, this, &impl_->handle);
    hotplug_ = rc == LIBUSB_SUCCESS;
  }
  if (impl_->ctx != nullptr) impl_->last = list_with(impl_->ctx);
  thread_ = std::thread([this] { poll_loop(); });
}

void UsbWatcher::poll_loop() {
  while (running_.load()) {
    if (impl_->ctx == nullptr) {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      continue;
    }
    if (hotplug_) {
      timeval tv{0, 200'000};  // wake up often enough to notice stop()
      libusb_handle_events_timeout_completed(impl_->ctx, &tv, nullptr);
      continue;
    }
    for (int i = 0; i < 5 && running_.load(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    auto now = list_with(impl_->ctx);
    for (const auto& d : now) {
      if (std::ranges::none_of(impl_->last,
                               [&](const UsbDevice& o) { return same_device(o, d); })) {
        emit(UsbEvent::Kind::Arrived, d);
      }
    }
    for (const auto& d : impl_->last) {
      if (std::ranges::none_of(now, [&](const UsbDevice& o) { return same_device(o, d); })) {
        emit(UsbEvent::Kind::Left, d);
      }
    }
    impl_->last = std::move(now);
  }
}

void UsbWatcher::stop() noexcept {
  if (!running_.exchange(false)) return;
  if (thread_.joinable()) thread_.join();
  if (impl_->ctx != nullptr) {
    if (hotplug_) libusb_hotplug_deregister_callback(impl_->ctx, impl_->handle);
    libusb_exit(impl_->ctx);
    impl_->ctx = nullptr;
  }
}

}  // namespace kyso::pkcs11
