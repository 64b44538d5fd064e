// Rights a VM holds on a buffer (read, write, CPU mapping) and the access
// kinds the stage-2 and firewall backends program (read, write).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace rmem {

// What an initiator may do to a page. Backends program exactly this.
enum class Access : uint8_t { kNone = 0, kRead = 1, kWrite = 2, kReadWrite = 3 };

constexpr Access operator|(Access a, Access b) {
  return static_cast<Access>(static_cast<uint8_t>(a) | static_cast<uint8_t>(b));
}
constexpr Access operator&(Access a, Access b) {
  return static_cast<Access>(static_cast<uint8_t>(a) & static_cast<uint8_t>(b));
}
// True when `a` allows everything `b` allows.
constexpr bool Covers(Access a, Access b) { return (a & b) == b; }
const char* AccessName(Access a);  // "none", "read", "write", "read+write"

// A VM's rights on a buffer. read/write apply to the VM's CPUs (through
// stage-2, only when cpu-map is also held) and to the device initiators the
// VM owns (through the firewall). A right without read or write is empty.
class Rights {
 public:
  enum Bit : uint8_t { kRead = 1, kWrite = 2, kCpuMap = 4 };
  static constexpr uint8_t kAllBits = kRead | kWrite | kCpuMap;

  constexpr Rights() = default;
  // Only the three defined bits; nullopt for anything else (wire input).
  static constexpr std::optional<Rights> FromBits(uint32_t bits) {
    if ((bits & ~uint32_t{kAllBits}) != 0) return std::nullopt;
    return Rights(static_cast<uint8_t>(bits));
  }
  static constexpr Rights Of(uint8_t bits) { return Rights(bits & kAllBits); }

  constexpr bool read() const { return bits_ & kRead; }
  constexpr bool write() const { return bits_ & kWrite; }
  constexpr bool cpu_map() const { return bits_ & kCpuMap; }
  constexpr uint8_t bits() const { return bits_; }
  constexpr bool empty() const { return (bits_ & (kRead | kWrite)) == 0; }
  // True when every right in `o` is also in this.
  constexpr bool Includes(Rights o) const { return (bits_ & o.bits_) == o.bits_; }
  constexpr Rights operator&(Rights o) const { return Rights(bits_ & o.bits_); }
  constexpr Rights operator|(Rights o) const { return Rights(bits_ | o.bits_); }
  constexpr Rights Without(uint8_t bits) const { return Rights(bits_ & ~bits); }
  // The data access these rights give (device initiators always; CPUs only
  // with cpu-map).
  constexpr Access access() const { return static_cast<Access>(bits_ & (kRead | kWrite)); }
  constexpr Access cpu_access() const { return cpu_map() ? access() : Access::kNone; }
  constexpr bool operator==(const Rights&) const = default;
  // "read+write+cpu-map", "read", or "none".
  std::string ToString() const;

 private:
  constexpr explicit Rights(uint8_t bits) : bits_(bits) {}
  uint8_t bits_ = 0;
};

}  // namespace rmem
