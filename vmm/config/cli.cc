#include "vmm/config/cli.h"

#include <optional>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "vmm/arch/arm64/memory_map.h"

namespace rmem::vmm {
namespace {

constexpr uint64_t kMinMemoryMib = 32;
constexpr uint64_t kMaxMemoryMib = 64 * 1024;
constexpr int64_t kMaxTimeoutSeconds = 7 * 24 * 3600;

absl::Status Bad(absl::string_view option, absl::string_view value, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(option, " ", value, ": ", why));
}

template <typename T>
absl::StatusOr<T> Number(absl::string_view option, absl::string_view value, T lo, T hi) {
  T n{};
  if (!absl::SimpleAtoi(value, &n)) return Bad(option, value, "not a whole number");
  if (n < lo || n > hi) return Bad(option, value, absl::StrCat("must be in [", lo, ", ", hi, "]"));
  return n;
}

// "vhost-user,socket=PATH,type=blk|fs|N[,tag=TAG]"
absl::StatusOr<DeviceConfig> ParseDevice(absl::string_view spec) {
  const std::vector<std::string> parts = absl::StrSplit(spec, ',');
  if (parts.empty() || parts[0] != "vhost-user") {
    return Bad("--device", spec, "only vhost-user devices exist: vhost-user,socket=PATH,type=T");
  }
  DeviceConfig d;
  for (size_t i = 1; i < parts.size(); ++i) {
    const size_t eq = parts[i].find('=');
    const std::string key = parts[i].substr(0, eq);
    const std::string value = eq == std::string::npos ? "" : parts[i].substr(eq + 1);
    if (key == "socket" && !value.empty()) {
      d.socket = value;
    } else if (key == "type" && !value.empty()) {
      d.type = value;
      if (value == "blk") {
        d.device_id = kVirtioIdBlock;
      } else if (value == "fs") {
        d.device_id = kVirtioIdFs;
      } else {
        absl::StatusOr<uint32_t> id = Number<uint32_t>("--device type", value, 1, 0xffff);
        if (!id.ok()) return Bad("--device", spec, "type is blk, fs or a VIRTIO device ID");
        d.device_id = *id;
      }
    } else if (key == "tag" && !value.empty()) {
      if (value.size() > kVirtioFsTagSize) {
        return Bad("--device", spec, absl::StrCat("tag is at most ", kVirtioFsTagSize, " bytes"));
      }
      d.tag = value;
    } else {
      return Bad("--device", spec, absl::StrCat("unknown or empty key '", parts[i], "'"));
    }
  }
  if (d.socket.empty() || d.device_id == 0) {
    return Bad("--device", spec, "needs socket=PATH and type=blk|fs|ID");
  }
  if (!d.tag.empty() && d.device_id != kVirtioIdFs) {
    return Bad("--device", spec, "tag= is for type=fs only");
  }
  return d;
}

}  // namespace

std::string Usage() {
  return absl::StrCat(
      "usage: rmem-vmm --kernel IMAGE [options]\n"
      "\n"
      "Boots an arm64 Linux guest under KVM: RAM in a memfd, a generated device\n"
      "tree, a GICv3, PSCI, a 16550 console on stdout, virtio-mmio devices.\n"
      "\n"
      "options:\n"
      "  --kernel IMAGE     uncompressed arm64 Image (required)\n"
      "  --initrd FILE      initramfs\n"
      "  --append CMDLINE   kernel command line (default: console=ttyS0)\n"
      "  --memory MIB       guest RAM in MiB, ",
      kMinMemoryMib, "..", kMaxMemoryMib,
      " (default 256)\n"
      "  --cpus N           vCPUs, 1..",
      arm64::kMaxCpus,
      " (default 1)\n"
      "  --timeout SECONDS  stop the guest after this wall-clock time (default: none)\n"
      "  --dtb-out FILE     also write the generated device tree to FILE\n"
      "  --device vhost-user,socket=PATH,type=blk|fs|ID[,tag=TAG]\n"
      "                     a virtio-mmio device served by a vhost-user backend\n"
      "                     (repeatable, up to ",
      arm64::kMaxVirtioDevices,
      "); for type=fs, tag=TAG (1..", kVirtioFsTagSize,
      " bytes) is the tag the guest\n"
      "                     mounts, served by rmem-vmm (needed with virtiofsd)\n"
      "  --reconnect-timeout SECONDS\n"
      "                     when a vhost-user back-end hangs up (rmemd crashed or\n"
      "                     was restarted), reconnect to it for up to this long;\n"
      "                     the guest's accesses to its shared memory wait\n"
      "                     meanwhile. 0: do not; the device then needs a reset\n"
      "                     (default 30)\n"
      "  --stats            at the end, print set-up and run times and exits to the\n"
      "                     VMM by device on stderr\n"
      "  --on-violation abort|stop\n"
      "                     a guest access to shared memory it holds no grant for\n"
      "                     (a write to a read-only piece, any access to an unmapped\n"
      "                     offset of a region) is logged and counted, then:\n"
      "                     abort: the guest gets a synchronous external data abort\n"
      "                     (a bus error; Linux sends SIGBUS to a user access) and\n"
      "                     continues (default); stop: the guest is stopped\n"
      "  --help             this text\n"
      "\n"
      "exit status: 0 guest powered off; 3 guest asked for a reset; 4 guest\n"
      "crashed; 5 isolation violations: the guest powered off but touched shared\n"
      "memory it was not granted (the count is on stderr), or --on-violation stop\n"
      "(or a KVM that cannot inject an abort) stopped it at the first; 124 timeout;\n"
      "143 SIGTERM/SIGINT; 1 VMM error; 2 usage error.\n");
}

absl::StatusOr<std::variant<VmConfig, HelpRequested>> ParseCommandLine(
    const std::vector<std::string>& args) {
  // --help wins wherever it is, even beside mistakes.
  for (const std::string& a : args) {
    if (a == "--help" || a == "-h") return HelpRequested{};
  }
  VmConfig c;
  c.append = "console=ttyS0";
  bool have_kernel = false;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string option = args[i];
    std::optional<std::string> value;
    if (const size_t eq = option.find('='); option.rfind("--", 0) == 0 && eq != std::string::npos) {
      value = option.substr(eq + 1);
      option.resize(eq);
    }
    if (option.rfind("--", 0) != 0) {
      return absl::InvalidArgumentError(absl::StrCat("unexpected argument '", option, "'"));
    }
    if (option == "--stats" && !value) {
      c.stats = true;
      continue;
    }
    if (!value) {
      if (i + 1 >= args.size()) {
        return absl::InvalidArgumentError(absl::StrCat(option, " needs a value"));
      }
      value = args[++i];
    }
    if (option == "--kernel") {
      c.kernel = *value;
      have_kernel = !value->empty();
    } else if (option == "--initrd") {
      c.initrd = *value;
    } else if (option == "--append") {
      c.append = *value;
    } else if (option == "--memory") {
      absl::StatusOr<uint64_t> mib = Number(option, *value, kMinMemoryMib, kMaxMemoryMib);
      if (!mib.ok()) return mib.status();
      c.memory_mib = *mib;
    } else if (option == "--cpus") {
      absl::StatusOr<int> n = Number(option, *value, 1, arm64::kMaxCpus);
      if (!n.ok()) return n.status();
      c.cpus = *n;
    } else if (option == "--timeout") {
      absl::StatusOr<int64_t> s = Number<int64_t>(option, *value, 1, kMaxTimeoutSeconds);
      if (!s.ok()) return s.status();
      c.timeout = absl::Seconds(*s);
    } else if (option == "--reconnect-timeout") {
      absl::StatusOr<int64_t> s = Number<int64_t>(option, *value, 0, kMaxTimeoutSeconds);
      if (!s.ok()) return s.status();
      c.reconnect_timeout = absl::Seconds(*s);
    } else if (option == "--on-violation") {
      if (*value == "abort") {
        c.on_violation = ViolationPolicy::kAbort;
      } else if (*value == "stop") {
        c.on_violation = ViolationPolicy::kStop;
      } else {
        return Bad(option, *value, "must be abort or stop");
      }
    } else if (option == "--dtb-out") {
      c.dtb_out = *value;
    } else if (option == "--device") {
      absl::StatusOr<DeviceConfig> d = ParseDevice(*value);
      if (!d.ok()) return d.status();
      if (c.devices.size() == static_cast<size_t>(arm64::kMaxVirtioDevices)) {
        return Bad(option, *value, absl::StrCat("at most ", arm64::kMaxVirtioDevices, " devices"));
      }
      c.devices.push_back(std::move(*d));
    } else {
      return absl::InvalidArgumentError(absl::StrCat("unknown option ", option));
    }
  }
  if (!have_kernel) return absl::InvalidArgumentError("--kernel IMAGE is required");
  return c;
}

}  // namespace rmem::vmm
