// The vhost-user wire format (QEMU docs/interop/vhost-user.rst), shared by
// rmem-vmm's front-end (vmm/vhost_user/) and rmemd's back-end
// (virtio_rmem/vhost_user/): request codes in both directions, header flags,
// protocol feature bits and the payload structs, each with its size and
// field offsets pinned by static_asserts. The spec says "machine native byte order"; we
// only run on little-endian hosts, so host order is little-endian.
//
// VHOST_USER_PROTOCOL_F_SHMEM, GET_SHMEM_CONFIG (44) and BACKEND_SHMEM_MAP /
// _UNMAP (9, 10) follow the SHMEM extension. Its protocol feature bit is 22
// as our device contract fixes it (issue 3); the v11 series posted to
// qemu-devel in Nov 2025 numbered it 20 — if upstream settles on another
// bit, this constant is the one place to change (docs/vmm.md).
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <span>

namespace rmem::vhost_user {

static_assert(std::endian::native == std::endian::little,
              "vhost-user messages are host order; rmem assumes a little-endian host");

// Requests the front-end sends on the main socket. The ones neither side of
// rmem implements are listed so that errors can name them.
enum class FrontendRequest : uint32_t {
  kGetFeatures = 1,
  kSetFeatures = 2,
  kSetOwner = 3,
  kResetOwner = 4,
  kSetMemTable = 5,
  kSetLogBase = 6,
  kSetLogFd = 7,
  kSetVringNum = 8,
  kSetVringAddr = 9,
  kSetVringBase = 10,
  kGetVringBase = 11,
  kSetVringKick = 12,
  kSetVringCall = 13,
  kSetVringErr = 14,
  kGetProtocolFeatures = 15,
  kSetProtocolFeatures = 16,
  kGetQueueNum = 17,
  kSetVringEnable = 18,
  kSetBackendReqFd = 21,
  kIotlbMsg = 22,
  kGetConfig = 24,
  kSetConfig = 25,
  kGetInflightFd = 31,
  kSetInflightFd = 32,
  kResetDevice = 34,
  kVringKick = 35,
  kGetMaxMemSlots = 36,
  kAddMemReg = 37,
  kRemMemReg = 38,
  kSetStatus = 39,
  kGetStatus = 40,
  kGetShmemConfig = 44,
};

// Requests the back-end sends on the socket it got with SET_BACKEND_REQ_FD.
enum class BackendRequest : uint32_t {
  kShmemMap = 9,
  kShmemUnmap = 10,
};

// Header flags.
inline constexpr uint32_t kVersionMask = 0x3;
inline constexpr uint32_t kVersion = 0x1;
inline constexpr uint32_t kFlagReply = 1u << 2;
inline constexpr uint32_t kFlagNeedReply = 1u << 3;
inline constexpr uint32_t kKnownFlags = kVersionMask | kFlagReply | kFlagNeedReply;

// Feature bit (in GET_FEATURES) saying the back-end speaks protocol features.
inline constexpr int kFProtocolFeatures = 30;
// VHOST_F_LOG_ALL: a vhost (not virtio) feature for dirty logging.
inline constexpr int kFLogAll = 26;

// Protocol feature bits (GET/SET_PROTOCOL_FEATURES).
inline constexpr int kProtocolMq = 0;
inline constexpr int kProtocolLogShmfd = 1;
inline constexpr int kProtocolReplyAck = 3;
inline constexpr int kProtocolBackendReq = 5;
inline constexpr int kProtocolConfig = 9;
inline constexpr int kProtocolBackendSendFd = 10;
inline constexpr int kProtocolResetDevice = 13;
inline constexpr int kProtocolInbandNotifications = 14;
inline constexpr int kProtocolConfigureMemSlots = 15;
inline constexpr int kProtocolShmem = 22;

// At most this many fds travel with one message (QEMU's limit, and the
// memory table's region limit).
inline constexpr int kMaxFds = 8;

// SET_VRING_KICK / _CALL / _ERR u64: bits 0-7 the ring, bit 8 "no fd".
inline constexpr uint64_t kVringIndexMask = 0xff;
inline constexpr uint64_t kVringNoFd = 1u << 8;

struct MsgHeader {
  uint32_t request = 0;
  uint32_t flags = 0;
  uint32_t size = 0;  // payload bytes that follow
};
static_assert(sizeof(MsgHeader) == 12);

struct VringState {
  uint32_t index = 0;
  uint32_t num = 0;
};
static_assert(sizeof(VringState) == 8);

struct VringAddr {
  uint32_t index = 0;
  uint32_t flags = 0;  // bit 0: VHOST_VRING_F_LOG
  uint64_t desc_user_addr = 0;
  uint64_t used_user_addr = 0;
  uint64_t avail_user_addr = 0;
  uint64_t log_guest_addr = 0;
};
static_assert(sizeof(VringAddr) == 40);
static_assert(offsetof(VringAddr, desc_user_addr) == 8);
static_assert(offsetof(VringAddr, used_user_addr) == 16);
static_assert(offsetof(VringAddr, avail_user_addr) == 24);
static_assert(offsetof(VringAddr, log_guest_addr) == 32);

struct MemoryRegion {
  uint64_t guest_phys_addr = 0;
  uint64_t memory_size = 0;
  uint64_t userspace_addr = 0;
  uint64_t mmap_offset = 0;
};
static_assert(sizeof(MemoryRegion) == 32);

inline constexpr int kMaxMemoryRegions = 8;
struct MemoryTable {
  uint32_t nregions = 0;
  uint32_t padding = 0;
  MemoryRegion regions[kMaxMemoryRegions];
};
static_assert(sizeof(MemoryTable) == 8 + 8 * 32);
static_assert(offsetof(MemoryTable, regions) == 8);

// GET_CONFIG / SET_CONFIG: a header and up to 256 bytes of config space.
inline constexpr uint32_t kMaxConfigSize = 256;
inline constexpr uint32_t kConfigFlagWritable = 0;  // "front-end message for writable fields"
inline constexpr uint32_t kConfigFlagMigration = 1;  // "... used for live migration"
struct ConfigHeader {
  uint32_t offset = 0;
  uint32_t size = 0;
  uint32_t flags = 0;
};
static_assert(sizeof(ConfigHeader) == 12);

// GET_SHMEM_CONFIG reply: region sizes indexed by shmid; a zero size is an
// unused id.
inline constexpr uint32_t kMaxShmemRegions = 256;
struct ShmemConfig {
  uint32_t nregions = 0;
  uint32_t padding = 0;
  uint64_t memory_sizes[kMaxShmemRegions] = {};
};
static_assert(sizeof(ShmemConfig) == 8 + 256 * 8);
static_assert(offsetof(ShmemConfig, memory_sizes) == 8);

// BACKEND_SHMEM_MAP / _UNMAP ("MMAP request").
inline constexpr uint64_t kShmemMapReadWrite = 1u << 0;  // clear: read-only
struct ShmemMapMsg {
  uint8_t shmid = 0;
  uint8_t padding[7] = {};
  uint64_t fd_offset = 0;
  uint64_t shm_offset = 0;
  uint64_t len = 0;
  uint64_t flags = 0;
};
static_assert(sizeof(ShmemMapMsg) == 40);
static_assert(offsetof(ShmemMapMsg, fd_offset) == 8);
static_assert(offsetof(ShmemMapMsg, shm_offset) == 16);
static_assert(offsetof(ShmemMapMsg, len) == 24);
static_assert(offsetof(ShmemMapMsg, flags) == 32);

// VRING_ADDR flags bit 0: log used-ring writes (needs VHOST_F_LOG_ALL).
inline constexpr uint32_t kVringAddrFLog = 1u << 0;

// A wire struct (or u64) as the payload bytes Channel::Send takes.
template <typename T>
std::span<const uint8_t> Bytes(const T& value) {
  return {reinterpret_cast<const uint8_t*>(&value), sizeof(T)};
}

// The largest payload we accept: the SHMEM config reply.
inline constexpr uint32_t kMaxPayloadSize = sizeof(ShmemConfig);

}  // namespace rmem::vhost_user
