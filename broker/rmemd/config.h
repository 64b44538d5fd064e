// rmemd's configuration file (TOML, docs/rmemd.md): the guests rmemd serves
// (name, VM id, vhost-user socket, quota, shared memory region size) and
// the heaps they use (carve-outs by use-case, CPU mapping, revoke policy,
// quotas, and per guest: may it allocate, its rights ceiling, its quota).
// The carve-outs and device initiators themselves come from firmware.
// Also where rmemd's control socket is ([broker] control).
//
// Parsing is strict: an unknown key, a wrong type, a duplicate name or id
// is an error naming the file, the line and the entry, so a typo never
// silently becomes a default.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "broker/policy/policy.h"
#include "broker/rmemd/control_protocol.h"

namespace rmem::rmemd {

inline constexpr uint64_t kDefaultRegionSize = uint64_t{256} << 20;
inline constexpr uint64_t kDefaultMaxAlign = uint64_t{2} << 20;

struct GuestConfig {
  std::string name;    // as rmem,owner-vm in the device tree names it
  VmId id;             // 1 .. 2^32-1
  std::string socket;  // rmemd listens here for the VM's VMM (vhost-user)
  uint64_t quota_bytes = kUnlimited;
  uint64_t region_bytes = kDefaultRegionSize;  // its shared memory region
};

struct HeapGuestConfig {
  std::string vm;
  bool allocate = false;
  Rights rights;
  uint64_t quota_bytes = kUnlimited;
};

struct HeapFileConfig {
  std::string name;
  std::vector<std::string> use_cases;  // carve-outs by rmem,use-case, in order
  bool cpu_map = true;
  bool owner_may_revoke = false;
  uint64_t quota_bytes = kUnlimited;
  uint64_t max_align = kDefaultMaxAlign;
  std::vector<HeapGuestConfig> guests;
};

struct RmemdConfig {
  std::string source;  // the file it came from, for messages
  uint32_t max_receivers = 8;
  std::string control = kDefaultControlPath;  // rmemd's control socket
  std::vector<GuestConfig> guests;
  std::vector<HeapFileConfig> heaps;
};

// `source` names the text in messages ("/etc/rmemd.toml").
// InvalidArgument "<source>:<line>: <what>" for any mistake.
absl::StatusOr<RmemdConfig> ParseConfig(absl::string_view text, absl::string_view source);
// NotFound / PermissionDenied when the file cannot be read.
absl::StatusOr<RmemdConfig> LoadConfig(const std::string& path);

// "256 MiB", "2MiB", "4096", 4096: a byte count. nullopt for anything else
// (negative, fractional, unknown unit, overflowing).
std::optional<uint64_t> ParseBytes(absl::string_view text);

}  // namespace rmem::rmemd
