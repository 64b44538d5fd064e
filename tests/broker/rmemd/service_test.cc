// rmemd's service end to end in one process, with every real piece but the
// guests: the documented example configuration over the embedded default
// platform, the broker on carve-out memory (the memfd STAND-IN), one
// vhost-user socket per guest, and per guest rmem-vmm's own VhostUserFrontend
// and ShmWindows (which mmap every SHMEM_MAP piece from the fd rmemd sends).
// A FakeDriver per queue plays the guest driver: requests are bytes built
// from the uapi header, in guest memory, on a split virtqueue
// (service_guest.h holds the service and the guests).
//
// What it shows: a buffer written by decrypt is read by display through its
// own mapping, read-only; infotainment cannot retrieve it with the handle;
// a lent buffer leaves the owner's region and comes back on reclaim; a VMM
// that hangs up loses its buffers, its borrowers are told (REVOKED) and
// lose their mappings, the pages come back zeroed; malformed requests get
// a status and the service goes on serving everyone; a guest allocating in
// a loop stops at its quota while the others still allocate; a guest
// keeping its queue full does not starve the others (what that costs them
// in time is tests/bench/flood_bench.cc's to show).
#include "broker/rmemd/service.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "broker/backend/firewall/tzc400_registers.h"
#include "tests/broker/rmemd/service_guest.h"
#include "virtio_rmem/uapi/virtio_rmem.h"
#include "virtio_rmem/wire.h"

namespace rmem::rmemd {
namespace {

using ::testing::HasSubstr;
using virtio_rmem::AppendWire;
using virtio_rmem::ReadWire;

class ServiceTest : public ::testing::Test {
 protected:
  ~ServiceTest() override {
    decrypt_.reset();
    display_.reset();
    info_.reset();
    rmemd_.reset();
  }
  void SetUp() override {
    // The documented example, with its sockets moved to a scratch directory.
    const char* example = std::getenv("RMEMD_EXAMPLE_CONFIG");
    ASSERT_NE(example, nullptr) << "RMEMD_EXAMPLE_CONFIG is set by meson";
    absl::StatusOr<std::unique_ptr<InProcessService>> rmemd = InProcessService::Start(example);
    ASSERT_TRUE(rmemd.ok()) << rmemd.status();
    rmemd_ = *std::move(rmemd);
    decrypt_ = std::make_unique<Guest>("decrypt", rmemd_->socket("decrypt"));
    display_ = std::make_unique<Guest>("display", rmemd_->socket("display"));
    info_ = std::make_unique<Guest>("infotainment", rmemd_->socket("infotainment"));
    for (Guest* g : {decrypt_.get(), display_.get(), info_.get()}) {
      const absl::Status connected = g->Connect();
      ASSERT_TRUE(connected.ok()) << connected;
    }
  }
  // What rmemd does on SIGTERM: the loop stops, the service goes.
  void StopService() { rmemd_->Stop(); }

  static uint64_t HeapFree(Guest& g, uint32_t heap = kHeapVideo) {
    virtio_rmem_req_get_heap r{};
    r.hdr.type = VIRTIO_RMEM_REQ_GET_HEAP;
    r.heap = heap;
    const std::vector<uint8_t> response = g.Request(Bytes(r));
    EXPECT_EQ(StatusOf(response), VIRTIO_RMEM_S_OK);
    if (response.size() != sizeof(virtio_rmem_resp_get_heap)) return 0;
    return ReadWire<virtio_rmem_resp_get_heap>(response).free_bytes;
  }
  // `vm`'s quota on `heap` as the configuration gives it (0 if none).
  uint64_t HeapQuota(const std::string& heap, const std::string& vm) const {
    for (const HeapFileConfig& h : rmemd_->config().heaps) {
      if (h.name != heap) continue;
      for (const HeapGuestConfig& g : h.guests) {
        if (g.vm == vm) return g.quota_bytes;
      }
    }
    return 0;
  }
  // The next event of `g`, which must be of `type`.
  static virtio_rmem_event Expect(Guest& g, uint32_t type) {
    std::optional<virtio_rmem_event> e = g.NextEvent();
    EXPECT_TRUE(e.has_value()) << "no event within " << kGuard;
    if (!e) return {};
    EXPECT_EQ(e->type, type);
    return *e;
  }

  // What the platform's TZC-400 (its register-level model) decides for a
  // DMA access by the master with NSAID `id`; a refusal is recorded as the
  // hardware records it.
  bool Dma(const char* controller, uint32_t id, uint64_t address, bool write) {
    FirewallModel* model = rmemd_->firewalls().model(controller);
    EXPECT_NE(model, nullptr);
    return model != nullptr && model->Access({.address = address, .write = write, .id = id});
  }
  // Read and write, at the buffer's first and last byte, through the
  // controller in front of it (secure-video: the TZC-400; secure-ui: the
  // block firewall).
  Access DmaAccess(uint32_t id, PageRange pages, const char* controller = kTzc) {
    const uint64_t first = pages.base().value(), last = pages.end().addr().value() - 1;
    Access a = Access::kNone;
    if (Dma(controller, id, first, false) && Dma(controller, id, last, false)) {
      a = a | Access::kRead;
    }
    if (Dma(controller, id, first, true) && Dma(controller, id, last, true)) {
      a = a | Access::kWrite;
    }
    return a;
  }
  PageRange PagesOf(uint64_t buffer) {
    const Buffer* b = rmemd_->service().broker().ledger().FindBuffer(BufferId(buffer));
    EXPECT_NE(b, nullptr);
    return b != nullptr ? b->pages : PageRange();
  }
  static constexpr char kTzc[] = "/soc/firewall@2a4a0000";
  static constexpr char kBlock[] = "/soc/firewall@2a4b0000";
  static constexpr uint32_t kDecoderId = 4, kDisplayId = 5, kNobodysId = 7;

  std::unique_ptr<InProcessService> rmemd_;
  std::unique_ptr<Guest> decrypt_, display_, info_;
};

TEST_F(ServiceTest, EveryGuestGetsItsConfiguredRegion) {
  // docs/rmemd.example.toml: decrypt has region = "256 MiB", the others the default.
  EXPECT_EQ(decrypt_->region_size(), uint64_t{256} << 20);
  EXPECT_EQ(display_->region_size(), kDefaultRegionSize);
}

TEST_F(ServiceTest, ShareReadOnly_DisplayReadsTheBytesThroughAReadOnlyPiece_OthersCannot) {
  const virtio_rmem_resp_alloc a = Alloc(*decrypt_, 1 << 20);
  ASSERT_NE(a.shm_offset, VIRTIO_RMEM_NO_OFFSET);
  std::optional<RecordingGuest::Piece> own = decrypt_->reach().At(a.shm_offset);
  ASSERT_TRUE(own.has_value()) << "ALLOC maps the buffer into the owner's region";
  EXPECT_TRUE(own->writable);
  ASSERT_EQ(own->len, uint64_t{1} << 20);
  for (uint64_t i = 0; i < own->len; ++i) own->host[i] = static_cast<uint8_t>(i * 7 + 3);

  const std::vector<uint8_t> offer = Offer(*decrypt_, VIRTIO_RMEM_REQ_SHARE, a.buffer, kDisplay,
                                           VIRTIO_RMEM_RIGHT_READ | VIRTIO_RMEM_RIGHT_CPU_MAP);
  ASSERT_EQ(StatusOf(offer), VIRTIO_RMEM_S_OK);
  const uint64_t handle = ReadWire<virtio_rmem_resp_offer>(offer).handle;

  const virtio_rmem_event offered = Expect(*display_, VIRTIO_RMEM_EVENT_OFFERED);
  EXPECT_EQ(offered.handle, handle);
  EXPECT_EQ(offered.peer, kDecrypt.value());
  EXPECT_EQ(offered.size, uint64_t{1} << 20);

  // Infotainment, not named, holds the handle (leaked) and still gets nothing.
  EXPECT_EQ(StatusOf(ByHandle(*info_, VIRTIO_RMEM_REQ_RETRIEVE, handle)), VIRTIO_RMEM_S_NOT_FOUND);
  EXPECT_EQ(info_->reach().count(), 0u);

  const std::vector<uint8_t> got = ByHandle(*display_, VIRTIO_RMEM_REQ_RETRIEVE, handle);
  ASSERT_EQ(StatusOf(got), VIRTIO_RMEM_S_OK);
  const virtio_rmem_resp_retrieve r = ReadWire<virtio_rmem_resp_retrieve>(got);
  EXPECT_EQ(r.kind, static_cast<uint32_t>(VIRTIO_RMEM_KIND_SHARE));
  std::optional<RecordingGuest::Piece> theirs = display_->reach().At(r.shm_offset);
  ASSERT_TRUE(theirs.has_value()) << "RETRIEVE maps the buffer into the receiver's region";
  EXPECT_FALSE(theirs->writable) << "a read-only share is a read-only mapping";
  ASSERT_EQ(theirs->len, uint64_t{1} << 20);
  EXPECT_NE(theirs->host, own->host) << "two VMMs' own mappings of the same pages";
  for (uint64_t i = 0; i < theirs->len; ++i) {
    ASSERT_EQ(theirs->host[i], static_cast<uint8_t>(i * 7 + 3)) << "byte " << i;
  }
  Expect(*decrypt_, VIRTIO_RMEM_EVENT_RETRIEVED);

  // Relinquish: display's mapping goes, decrypt hears it, then frees.
  ASSERT_EQ(StatusOf(ByHandle(*display_, VIRTIO_RMEM_REQ_RELINQUISH, handle)), VIRTIO_RMEM_S_OK);
  EXPECT_FALSE(display_->reach().At(r.shm_offset).has_value());
  Expect(*decrypt_, VIRTIO_RMEM_EVENT_RELINQUISHED);
  EXPECT_EQ(StatusOf(ByBuffer(*decrypt_, VIRTIO_RMEM_REQ_FREE, a.buffer)), VIRTIO_RMEM_S_BUSY)
      << "the offer is open until the owner reclaims";
  ASSERT_EQ(StatusOf(Reclaim(*decrypt_, a.buffer)), VIRTIO_RMEM_S_OK);
  EXPECT_EQ(StatusOf(ByBuffer(*decrypt_, VIRTIO_RMEM_REQ_FREE, a.buffer)), VIRTIO_RMEM_S_OK);
  EXPECT_EQ(decrypt_->reach().count(), 0u) << "FREE unmaps";
}

// The device initiators of docs/rmemd.example.toml's platform (the embedded
// default: a video decoder owned by decrypt, NSAID 4, read-write; a display
// controller owned by display, NSAID 5, read only) follow their VMs' rights
// through the TZC-400 that rmemd programs -- asked here of the model, as a
// DMA master's accesses would be.
TEST_F(ServiceTest, DeviceInitiatorsFollowTheirVms_DecoderWritesDisplayReadsNobodyElse) {
  const virtio_rmem_resp_alloc a = Alloc(*decrypt_, 2 << 20);
  const PageRange frame = PagesOf(a.buffer);
  ASSERT_FALSE(frame.empty());
  EXPECT_EQ(DmaAccess(kDecoderId, frame), Access::kReadWrite) << "decrypt's decoder fills it";
  EXPECT_EQ(DmaAccess(kDisplayId, frame), Access::kNone);
  EXPECT_EQ(DmaAccess(kNobodysId, frame), Access::kNone);

  // Shared read-only with display, retrieved: its display controller reads.
  const std::vector<uint8_t> offer = Offer(*decrypt_, VIRTIO_RMEM_REQ_SHARE, a.buffer, kDisplay,
                                           VIRTIO_RMEM_RIGHT_READ | VIRTIO_RMEM_RIGHT_CPU_MAP);
  ASSERT_EQ(StatusOf(offer), VIRTIO_RMEM_S_OK);
  const uint64_t handle = ReadWire<virtio_rmem_resp_offer>(offer).handle;
  Expect(*display_, VIRTIO_RMEM_EVENT_OFFERED);
  EXPECT_EQ(DmaAccess(kDisplayId, frame), Access::kNone) << "offered is not retrieved";
  ASSERT_EQ(StatusOf(ByHandle(*display_, VIRTIO_RMEM_REQ_RETRIEVE, handle)), VIRTIO_RMEM_S_OK);
  Expect(*decrypt_, VIRTIO_RMEM_EVENT_RETRIEVED);
  EXPECT_EQ(DmaAccess(kDisplayId, frame), Access::kRead);
  EXPECT_EQ(DmaAccess(kDecoderId, frame), Access::kReadWrite);
  EXPECT_EQ(DmaAccess(kNobodysId, frame), Access::kNone);
  // The refused accesses were recorded as the hardware records them.
  FirewallModel* tzc = rmemd_->firewalls().model(kTzc);
  ASSERT_NE(tzc, nullptr);
  EXPECT_NE(tzc->Read32(tzc400::kIntStatus) & 1, 0u) << "filter 0 recorded a failure";

  // Relinquished: the display controller loses it; freed: the decoder too.
  ASSERT_EQ(StatusOf(ByHandle(*display_, VIRTIO_RMEM_REQ_RELINQUISH, handle)), VIRTIO_RMEM_S_OK);
  Expect(*decrypt_, VIRTIO_RMEM_EVENT_RELINQUISHED);
  EXPECT_EQ(DmaAccess(kDisplayId, frame), Access::kNone);
  ASSERT_EQ(StatusOf(Reclaim(*decrypt_, a.buffer)), VIRTIO_RMEM_S_OK);
  ASSERT_EQ(StatusOf(ByBuffer(*decrypt_, VIRTIO_RMEM_REQ_FREE, a.buffer)), VIRTIO_RMEM_S_OK);
  EXPECT_EQ(DmaAccess(kDecoderId, frame), Access::kNone);

  // The display's own secure-ui buffer, behind the block firewall (domain
  // 5): its controller reads it, and never writes it although display holds
  // write (rmem,max-access = "read"); the decoder has no id there at all.
  const virtio_rmem_resp_alloc ui = Alloc(*display_, 64 << 10, kHeapUi);
  const PageRange ui_pages = PagesOf(ui.buffer);
  EXPECT_EQ(DmaAccess(kDisplayId, ui_pages, kBlock), Access::kRead);
  EXPECT_EQ(DmaAccess(kDecoderId, ui_pages, kBlock), Access::kNone);
  EXPECT_EQ(DmaAccess(kNobodysId, ui_pages, kBlock), Access::kNone);
  ASSERT_EQ(StatusOf(ByBuffer(*display_, VIRTIO_RMEM_REQ_FREE, ui.buffer)), VIRTIO_RMEM_S_OK);
  EXPECT_EQ(DmaAccess(kDisplayId, ui_pages, kBlock), Access::kNone);
}

TEST_F(ServiceTest, Lend_OwnerLosesItsMappingUntilReclaim) {
  const virtio_rmem_resp_alloc a = Alloc(*decrypt_, 64 << 10);
  ASSERT_TRUE(decrypt_->reach().At(a.shm_offset).has_value());
  decrypt_->reach().At(a.shm_offset)->host[0] = 0x5a;
  const std::vector<uint8_t> lend =
      Offer(*decrypt_, VIRTIO_RMEM_REQ_LEND, a.buffer, kDisplay,
            VIRTIO_RMEM_RIGHT_READ | VIRTIO_RMEM_RIGHT_CPU_MAP);
  ASSERT_EQ(StatusOf(lend), VIRTIO_RMEM_S_OK);
  EXPECT_FALSE(decrypt_->reach().At(a.shm_offset).has_value()) << "lent: the owner's piece is gone";
  const uint64_t handle = Expect(*display_, VIRTIO_RMEM_EVENT_OFFERED).handle;
  const std::vector<uint8_t> got = ByHandle(*display_, VIRTIO_RMEM_REQ_RETRIEVE, handle);
  ASSERT_EQ(StatusOf(got), VIRTIO_RMEM_S_OK);
  const uint64_t offset = ReadWire<virtio_rmem_resp_retrieve>(got).shm_offset;
  ASSERT_TRUE(display_->reach().At(offset).has_value());
  EXPECT_EQ(display_->reach().At(offset)->host[0], 0x5a);
  Expect(*decrypt_, VIRTIO_RMEM_EVENT_RETRIEVED);
  EXPECT_EQ(StatusOf(Reclaim(*decrypt_, a.buffer)), VIRTIO_RMEM_S_BUSY) << "still held";

  ASSERT_EQ(StatusOf(ByHandle(*display_, VIRTIO_RMEM_REQ_RELINQUISH, handle)), VIRTIO_RMEM_S_OK);
  Expect(*decrypt_, VIRTIO_RMEM_EVENT_RELINQUISHED);
  ASSERT_EQ(StatusOf(Reclaim(*decrypt_, a.buffer)), VIRTIO_RMEM_S_OK);
  // docs/virtio-rmem.md section 9: RECLAIM does not say where the buffer is
  // now; the device maps it back at its ALLOC offset.
  std::optional<RecordingGuest::Piece> back = decrypt_->reach().At(a.shm_offset);
  ASSERT_TRUE(back.has_value()) << "reclaimed: the owner sees it again";
  EXPECT_EQ(back->host[0], 0x5a);
}

TEST_F(ServiceTest, OwnerVmmHangsUp_BorrowerIsRevokedAndThePagesComeBackZeroed) {
  const uint64_t free_before = HeapFree(*display_);
  const virtio_rmem_resp_alloc a = Alloc(*decrypt_, 2 << 20);
  std::memset(decrypt_->reach().At(a.shm_offset)->host, 0xa5, 2 << 20);
  const std::vector<uint8_t> offer = Offer(*decrypt_, VIRTIO_RMEM_REQ_SHARE, a.buffer, kDisplay,
                                           VIRTIO_RMEM_RIGHT_READ | VIRTIO_RMEM_RIGHT_CPU_MAP);
  ASSERT_EQ(StatusOf(offer), VIRTIO_RMEM_S_OK);
  const uint64_t handle = Expect(*display_, VIRTIO_RMEM_EVENT_OFFERED).handle;
  const std::vector<uint8_t> got = ByHandle(*display_, VIRTIO_RMEM_REQ_RETRIEVE, handle);
  ASSERT_EQ(StatusOf(got), VIRTIO_RMEM_S_OK);
  EXPECT_EQ(HeapFree(*display_), free_before - (2 << 20));

  decrypt_->Hangup();  // the decrypt VM's VMM dies

  const virtio_rmem_event revoked = Expect(*display_, VIRTIO_RMEM_EVENT_REVOKED);
  EXPECT_EQ(revoked.handle, handle);
  EXPECT_EQ(revoked.reason, static_cast<uint32_t>(VIRTIO_RMEM_REASON_PEER_GONE));
  EXPECT_EQ(display_->reach().count(), 0u) << "the borrower's mapping is gone before the event";
  EXPECT_EQ(HeapFree(*display_), free_before) << "every page back in the heap";
  EXPECT_EQ(StatusOf(ByHandle(*display_, VIRTIO_RMEM_REQ_RELINQUISH, handle)),
            VIRTIO_RMEM_S_NOT_FOUND);

  // The VM comes back (a new VMM on the same socket) and gets zeros.
  const absl::Status reconnected = decrypt_->Connect();
  ASSERT_TRUE(reconnected.ok()) << reconnected;
  const virtio_rmem_resp_alloc again = Alloc(*decrypt_, 2 << 20);
  std::optional<RecordingGuest::Piece> p = decrypt_->reach().At(again.shm_offset);
  ASSERT_TRUE(p.has_value());
  for (uint64_t i = 0; i < p->len; ++i) ASSERT_EQ(p->host[i], 0) << "byte " << i << " not scrubbed";
}

TEST_F(ServiceTest, OrderlyStop_UnmapsEveryBufferThroughTheStillConnectedVmms) {
  const virtio_rmem_resp_alloc a = Alloc(*decrypt_, 64 << 10);
  const std::vector<uint8_t> offer = Offer(*decrypt_, VIRTIO_RMEM_REQ_SHARE, a.buffer, kDisplay,
                                           VIRTIO_RMEM_RIGHT_READ | VIRTIO_RMEM_RIGHT_CPU_MAP);
  ASSERT_EQ(StatusOf(offer), VIRTIO_RMEM_S_OK);
  const uint64_t handle = ReadWire<virtio_rmem_resp_offer>(offer).handle;
  ASSERT_EQ(StatusOf(ByHandle(*display_, VIRTIO_RMEM_REQ_RETRIEVE, handle)), VIRTIO_RMEM_S_OK);
  ASSERT_EQ(decrypt_->reach().count(), 1u);
  ASSERT_EQ(display_->reach().count(), 1u);

  StopService();

  EXPECT_EQ(decrypt_->reach().count(), 0u) << "unmapped with SHMEM_UNMAP before the hang-up";
  EXPECT_EQ(display_->reach().count(), 0u);
}

TEST_F(ServiceTest, MalformedAndForbiddenRequests_GetAStatus_ServiceKeepsServingEveryone) {
  EXPECT_EQ(StatusOf(info_->Request({0x10, 0x00})), VIRTIO_RMEM_S_INVALID) << "2 bytes";
  virtio_rmem_req_alloc bad{};
  bad.hdr.type = VIRTIO_RMEM_REQ_ALLOC;
  bad.size = ~uint64_t{0};
  EXPECT_EQ(StatusOf(decrypt_->Request(Bytes(bad))), VIRTIO_RMEM_S_INVALID) << "size overflows";
  EXPECT_EQ(StatusOf(info_->Request(Bytes(bad))), VIRTIO_RMEM_S_DENIED)
      << "not allowed to allocate there at all: denied whatever the size";
  bad.size = 4096;
  EXPECT_EQ(StatusOf(info_->Request(Bytes(bad))), VIRTIO_RMEM_S_DENIED)
      << "infotainment may not allocate secure-video";
  EXPECT_EQ(StatusOf(ByBuffer(*info_, VIRTIO_RMEM_REQ_FREE, 1)), VIRTIO_RMEM_S_NOT_FOUND);
  // A response buffer too short for any response: used, nothing written.
  EXPECT_TRUE(info_->Request(Bytes(bad), 4).empty());
  // Everyone is still served.
  const virtio_rmem_resp_alloc a = Alloc(*decrypt_, 4096);
  EXPECT_EQ(StatusOf(ByBuffer(*decrypt_, VIRTIO_RMEM_REQ_FREE, a.buffer)), VIRTIO_RMEM_S_OK);
  EXPECT_GT(HeapFree(*info_), 0u);
  EXPECT_FALSE(info_->EventPending());
}

// docs/rmemd.example.toml: infotainment may own 2 MiB of secure-ui (and
// 4 MiB over all heaps); display shares that heap with 8 MiB of its own.
TEST_F(ServiceTest, Quota_AGuestAllocatingInALoopIsStoppedAtItsQuota_OthersStillAllocate) {
  constexpr uint64_t kBuffer = 256 << 10;
  const uint64_t quota = HeapQuota("secure-ui", "infotainment");
  ASSERT_EQ(quota, uint64_t{2} << 20) << "docs/rmemd.example.toml: infotainment on secure-ui";

  std::vector<uint64_t> mine;
  std::vector<uint8_t> refused;
  // Bounded, so that a quota not enforced fails instead of hanging.
  for (int i = 0; i < 1000 && refused.empty(); ++i) {
    const std::vector<uint8_t> r = TryAlloc(*info_, kBuffer, kHeapUi);
    if (StatusOf(r) == VIRTIO_RMEM_S_OK && r.size() == sizeof(virtio_rmem_resp_alloc)) {
      mine.push_back(ReadWire<virtio_rmem_resp_alloc>(r).buffer);
    } else {
      refused = r;
    }
  }
  EXPECT_EQ(StatusOf(refused), VIRTIO_RMEM_S_NO_SPACE);
  EXPECT_EQ(mine.size(), quota / kBuffer) << "exactly its quota's worth";
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(StatusOf(TryAlloc(*info_, kBuffer, kHeapUi)), VIRTIO_RMEM_S_NO_SPACE)
        << "attempt " << i << " after the quota was reached";
  }
  EXPECT_EQ(StatusOf(TryAlloc(*info_, 4096, kHeapUi)), VIRTIO_RMEM_S_NO_SPACE) << "not a page";

  // The others still allocate: display on the same heap, decrypt on its own.
  const virtio_rmem_resp_alloc ui = Alloc(*display_, kBuffer, kHeapUi);
  EXPECT_TRUE(display_->reach().At(ui.shm_offset).has_value());
  const virtio_rmem_resp_alloc video = Alloc(*decrypt_, kBuffer, kHeapVideo);
  EXPECT_TRUE(decrypt_->reach().At(video.shm_offset).has_value());

  // Freeing one buffer makes room for one, and no more.
  ASSERT_FALSE(mine.empty());
  ASSERT_EQ(StatusOf(ByBuffer(*info_, VIRTIO_RMEM_REQ_FREE, mine.back())), VIRTIO_RMEM_S_OK);
  mine.pop_back();
  EXPECT_EQ(StatusOf(TryAlloc(*info_, kBuffer, kHeapUi)), VIRTIO_RMEM_S_OK);
  EXPECT_EQ(StatusOf(TryAlloc(*info_, kBuffer, kHeapUi)), VIRTIO_RMEM_S_NO_SPACE);
}

// The back-end serves at most kMaxChainsPerIteration chains of one ring per
// loop iteration (virtio_rmem/vhost_user/limits.h), then the other guests'
// kicks. Here infotainment keeps 512 requests in flight all along while
// decrypt and display each make 200, one after another: every one is
// answered. How long they waited is flood_bench's to measure, not a test's.
TEST_F(ServiceTest, Flood_AGuestKeepingItsQueueFull_DoesNotStarveTheOthers) {
  constexpr int kEach = 200;
  constexpr uint64_t kFloodAtLeast = 5000;
  // Infotainment's VMM comes back with the largest queue the back-end
  // takes: 1024 entries, 512 requests in flight.
  info_ = std::make_unique<Guest>("infotainment", rmemd_->socket("infotainment"), 1024);
  const absl::Status connected = info_->Connect();
  ASSERT_TRUE(connected.ok()) << connected;
  Flooder flood(*info_, GetHeapRequest(kHeapUi));
  ASSERT_TRUE(flood.WaitForAnswered(info_->max_in_flight())) << "the flood is under way";
  const uint64_t flood_before = flood.answered();

  // Display in a thread of its own, decrypt here: each request waits for
  // the one before; the first unanswered one (hang guard) ends the run.
  int display_answered = 0;
  std::thread display([&] {
    for (int i = 0; i < kEach; ++i) {
      const std::vector<uint8_t> r = display_->Request(GetHeapRequest(kHeapUi));
      if (r.empty()) break;
      EXPECT_EQ(StatusOf(r), VIRTIO_RMEM_S_OK);
      ++display_answered;
    }
  });
  int decrypt_answered = 0;
  for (int i = 0; i < kEach / 2; ++i) {  // ALLOC and FREE: two requests
    const std::vector<uint8_t> a = TryAlloc(*decrypt_, 64 << 10, kHeapVideo);
    if (a.empty()) break;
    ++decrypt_answered;
    if (StatusOf(a) != VIRTIO_RMEM_S_OK || a.size() != sizeof(virtio_rmem_resp_alloc)) {
      ADD_FAILURE() << "ALLOC " << i << ": status " << StatusOf(a);  // and display joins
      break;
    }
    const std::vector<uint8_t> f =
        ByBuffer(*decrypt_, VIRTIO_RMEM_REQ_FREE, ReadWire<virtio_rmem_resp_alloc>(a).buffer);
    if (f.empty()) break;
    ++decrypt_answered;
    EXPECT_EQ(StatusOf(f), VIRTIO_RMEM_S_OK);
  }
  display.join();
  const uint64_t flood_during = flood.answered() - flood_before;
  EXPECT_EQ(decrypt_answered, kEach);
  EXPECT_EQ(display_answered, kEach);

  // The flooder is served all along too.
  EXPECT_TRUE(flood.WaitForAnswered(kFloodAtLeast)) << "answered: " << flood.answered();
  EXPECT_FALSE(flood.stalled());
  flood.Stop();
  std::printf(
      "[   INFO   ] infotainment's flood: %llu requests answered while decrypt and "
      "display made their %d\n",
      static_cast<unsigned long long>(flood_during), 2 * kEach);
  // What was in flight is answered, and the next request as ever.
  ASSERT_TRUE(info_->WaitForAnswered(info_->posted()));
  EXPECT_EQ(StatusOf(info_->Request(GetHeapRequest(kHeapUi))), VIRTIO_RMEM_S_OK);
}

}  // namespace
}  // namespace rmem::rmemd
