#include "virtio_rmem/vhost_user/request.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "virtio_rmem/vhost_user/limits.h"

namespace rmem::virtio_rmem {
namespace {

using vhost_user::FrontendRequest;

template <typename T>
T Read(const std::vector<uint8_t>& payload, size_t offset = 0) {
  T value;
  std::memcpy(&value, payload.data() + offset, sizeof(T));
  return value;
}

// The payload size `kind` needs, given the payload (for the variable ones).
// nullopt when the header part that tells it is itself missing.
std::optional<size_t> WantedSize(PayloadKind kind, const std::vector<uint8_t>& payload) {
  switch (kind) {
    case PayloadKind::kNone:
      return 0;
    case PayloadKind::kU64:
      return sizeof(uint64_t);
    case PayloadKind::kVringState:
      return sizeof(vhost_user::VringState);
    case PayloadKind::kVringAddr:
      return sizeof(vhost_user::VringAddr);
    case PayloadKind::kVringFile:
      return sizeof(uint64_t);
    case PayloadKind::kMemTable: {
      if (payload.size() < offsetof(vhost_user::MemoryTable, regions)) return std::nullopt;
      const uint32_t n = Read<uint32_t>(payload);
      return offsetof(vhost_user::MemoryTable, regions) +
             sizeof(vhost_user::MemoryRegion) *
                 std::min<uint64_t>(n, vhost_user::kMaxMemoryRegions);
    }
    case PayloadKind::kConfig: {
      if (payload.size() < sizeof(vhost_user::ConfigHeader)) return std::nullopt;
      const auto h = Read<vhost_user::ConfigHeader>(payload);
      return sizeof(h) + std::min<uint64_t>(h.size, vhost_user::kMaxConfigSize);
    }
  }
  return std::nullopt;
}

class Decoder {
 public:
  Decoder(const vhost_user::Message& m, const FrontendDecodeContext& c)
      : message_(m),
        context_(c),
        name_(vhost_user::NamedRequest(vhost_user::RequestSpace::kFrontend, m.header.request)) {}

  absl::Status Bad(absl::string_view why) const {
    return absl::InvalidArgumentError(absl::StrCat(name_, ": ", why));
  }

  absl::Status CheckRing(uint32_t index) const {
    if (index >= static_cast<uint32_t>(context_.num_queues)) {
      return Bad(absl::StrCat("ring ", index, " does not exist (the device has ",
                              context_.num_queues, " queues)"));
    }
    return absl::OkStatus();
  }

  absl::Status CheckSize(PayloadKind kind) const {
    const std::optional<size_t> want = WantedSize(kind, message_.payload);
    if (!want || message_.payload.size() != *want) {
      return Bad(absl::StrCat("payload of ", message_.payload.size(), " bytes (want ",
                              want ? absl::StrCat(*want) : "a longer one", ")"));
    }
    return absl::OkStatus();
  }

  absl::Status CheckFds(size_t want) const {
    if (message_.fds.size() != want) {
      return Bad(absl::StrCat(message_.fds.size(), " fds (want ", want, ")"));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<MemRegionSpec>> MemTable() const {
    const uint32_t n = Read<uint32_t>(message_.payload);
    if (n == 0 || n > static_cast<uint32_t>(vhost_user::kMaxMemoryRegions)) {
      return Bad(
          absl::StrCat(n, " memory regions (want 1 to ", vhost_user::kMaxMemoryRegions, ")"));
    }
    std::vector<MemRegionSpec> regions;
    for (uint32_t i = 0; i < n; ++i) {
      const auto r = Read<vhost_user::MemoryRegion>(
          message_.payload,
          offsetof(vhost_user::MemoryTable, regions) + i * sizeof(vhost_user::MemoryRegion));
      const std::string what = absl::StrCat(
          "memory region ", i, " (guest ", Hex(r.guest_phys_addr), " + ", Hex(r.memory_size),
          ", user ", Hex(r.userspace_addr), ", mmap offset ", Hex(r.mmap_offset), ")");
      if (r.memory_size == 0) return Bad(absl::StrCat(what, ": empty"));
      const uint64_t last = r.memory_size - 1;
      if (last > UINT64_MAX - r.guest_phys_addr || last > UINT64_MAX - r.userspace_addr ||
          r.memory_size > UINT64_MAX - r.mmap_offset) {
        return Bad(absl::StrCat(what, ": passes 2^64"));
      }
      for (uint32_t j = 0; j < regions.size(); ++j) {
        const MemRegionSpec& o = regions[j];
        auto overlap = [](uint64_t a, uint64_t a_size, uint64_t b, uint64_t b_size) {
          return a <= b + (b_size - 1) && b <= a + (a_size - 1);
        };
        if (overlap(r.guest_phys_addr, r.memory_size, o.guest.value(), o.size)) {
          return Bad(absl::StrCat(what, ": overlaps region ", j, " in guest memory"));
        }
        if (overlap(r.userspace_addr, r.memory_size, o.user.value(), o.size)) {
          return Bad(absl::StrCat(what, ": overlaps region ", j, " in the front-end's memory"));
        }
      }
      regions.push_back({GuestAddr(r.guest_phys_addr), r.memory_size, FrontendVa(r.userspace_addr),
                         r.mmap_offset});
    }
    return regions;
  }

 private:
  const vhost_user::Message& message_;
  const FrontendDecodeContext& context_;
  const std::string name_;
};

// Decodes the body of a request that passed the rule checks into `out`;
// `want_fds` is set for the payloads that say how many fds come with them.
absl::Status DecodeBody(const RequestRule& rule, const Decoder& d, const std::vector<uint8_t>& p,
                        const FrontendDecodeContext& context, FrontendMessage& out, size_t& want_fds) {
  switch (rule.payload) {
    case PayloadKind::kNone:
      return absl::OkStatus();
    case PayloadKind::kU64: {
      const auto v = Read<uint64_t>(p);
      if (rule.request == FrontendRequest::kSetFeatures && (v & ~context.offered_features)) {
        return d.Bad(absl::StrCat("features 0x", absl::Hex(v), " include bits we did not offer (0x",
                                  absl::Hex(v & ~context.offered_features), ")"));
      }
      if (rule.request == FrontendRequest::kSetProtocolFeatures &&
          (v & ~context.offered_protocol_features)) {
        return d.Bad(absl::StrCat("protocol features 0x", absl::Hex(v),
                                  " include bits we did not offer (0x",
                                  absl::Hex(v & ~context.offered_protocol_features), ")"));
      }
      out.u64 = v;
      return absl::OkStatus();
    }
    case PayloadKind::kVringState: {
      const auto s = Read<vhost_user::VringState>(p);
      if (absl::Status st = d.CheckRing(s.index); !st.ok()) return st;
      switch (rule.request) {
        case FrontendRequest::kSetVringNum:
          if (!IsPowerOfTwo(s.num) || s.num > kMaxQueueSize) {
            return d.Bad(absl::StrCat("ring ", s.index, " size ", s.num,
                                      " is not a power of two up to ", kMaxQueueSize));
          }
          break;
        case FrontendRequest::kSetVringBase:
          if (s.num > 0xffff) {
            return d.Bad(absl::StrCat("ring ", s.index, " base ", s.num,
                                      " is not a 16-bit index (packed rings are not offered)"));
          }
          break;
        case FrontendRequest::kSetVringEnable:
          if (s.num > 1) {
            return d.Bad(
                absl::StrCat("ring ", s.index, ": enable value ", s.num, " is neither 0 nor 1"));
          }
          break;
        default:  // GET_VRING_BASE: num is unused
          break;
      }
      out.state = s;
      return absl::OkStatus();
    }
    case PayloadKind::kVringAddr: {
      const auto a = Read<vhost_user::VringAddr>(p);
      if (absl::Status st = d.CheckRing(a.index); !st.ok()) return st;
      if (a.flags & vhost_user::kVringAddrFLog) {
        return d.Bad(absl::StrCat(
            "ring ", a.index, " asks for used-ring logging, but VHOST_F_LOG_ALL is not offered"));
      }
      if (a.flags & ~vhost_user::kVringAddrFLog) {
        return d.Bad(absl::StrCat("ring ", a.index, ": unknown flag bits 0x", absl::Hex(a.flags)));
      }
      out.addr = {a.index, FrontendVa(a.desc_user_addr), FrontendVa(a.used_user_addr),
                  FrontendVa(a.avail_user_addr)};
      return absl::OkStatus();
    }
    case PayloadKind::kVringFile: {
      const auto v = Read<uint64_t>(p);
      if (v & ~(vhost_user::kVringIndexMask | vhost_user::kVringNoFd)) {
        return d.Bad(absl::StrCat("reserved bits set in 0x", absl::Hex(v)));
      }
      const auto index = static_cast<uint32_t>(v & vhost_user::kVringIndexMask);
      if (absl::Status st = d.CheckRing(index); !st.ok()) return st;
      const bool has_fd = (v & vhost_user::kVringNoFd) == 0;
      want_fds = has_fd ? 1 : 0;
      out.file = {index, has_fd};
      return absl::OkStatus();
    }
    case PayloadKind::kMemTable: {
      absl::StatusOr<std::vector<MemRegionSpec>> regions = d.MemTable();
      if (!regions.ok()) return regions.status();
      want_fds = regions->size();
      out.regions = *std::move(regions);
      return absl::OkStatus();
    }
    case PayloadKind::kConfig: {
      const auto h = Read<vhost_user::ConfigHeader>(p);
      if (uint64_t{h.offset} + h.size > vhost_user::kMaxConfigSize) {
        return d.Bad(absl::StrCat("config range ", h.offset, " + ", h.size, " passes ",
                                  vhost_user::kMaxConfigSize, " bytes"));
      }
      if (h.flags != vhost_user::kConfigFlagWritable &&
          h.flags != vhost_user::kConfigFlagMigration) {
        return d.Bad(absl::StrCat("config flags ", h.flags, " are neither 0 nor 1"));
      }
      out.config = {h.offset, h.size, h.flags, {}};
      if (rule.request == FrontendRequest::kSetConfig) {
        out.config.bytes.assign(p.begin() + sizeof(h), p.end());
      }
      return absl::OkStatus();
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<FrontendMessage> DecodeFrontendRequest(vhost_user::Message message, const FrontendDecodeContext& context) {
  const uint32_t code = message.header.request;
  const std::string name = vhost_user::NamedRequest(vhost_user::RequestSpace::kFrontend, code);
  const RequestRule* rule = FindRequestRule(code);
  if (rule == nullptr) {
    return absl::UnimplementedError(
        absl::StrCat(name, ": not served by this back-end (its feature is not offered)"));
  }
  if (absl::Status s = CheckRequestAllowed(*rule, context.state, context.protocol_features);
      !s.ok()) {
    return s;
  }
  const Decoder d(message, context);
  if (absl::Status s = d.CheckSize(rule->payload); !s.ok()) return s;
  FrontendMessage out;
  out.code = rule->request;
  out.need_reply = (message.header.flags & vhost_user::kFlagNeedReply) != 0;
  size_t want_fds = rule->fds == FdRule::kOne ? 1 : 0;
  if (absl::Status s = DecodeBody(*rule, d, message.payload, context, out, want_fds); !s.ok()) {
    return s;
  }
  if (absl::Status s = d.CheckFds(want_fds); !s.ok()) return s;
  out.fds = std::move(message.fds);
  return out;
}

}  // namespace rmem::virtio_rmem
