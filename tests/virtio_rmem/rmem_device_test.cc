// RmemDevice driven the way a driver would: request bytes built from the
// uapi structures, responses and events read back the same way. One named
// test per request and per malformation of docs/virtio-rmem.md section 7.1;
// every rejection must leave the broker's state unchanged. A property test
// throws mutated and random requests at the device.
#include "virtio_rmem/rmem_device.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "tests/broker/broker_fixture.h"
#include "virtio_rmem/wire.h"

namespace rmem::virtio_rmem {
namespace {

using ::rmem::testing::BrokerTest;
using ::rmem::testing::kDecrypt;
using ::rmem::testing::kDisplay;
using ::rmem::testing::kInfotainment;
using ::testing::HasSubstr;

constexpr uint32_t kAllFeatures = kOfferedFeatures;
constexpr uint32_t kHeapVideo = 0, kHeapDeviceOnly = 1, kHeapGeneral = 2;

template <typename T>
std::vector<uint8_t> Bytes(const T& value) {
  std::vector<uint8_t> out;
  AppendWire(out, value);
  return out;
}

std::string Name(const uint8_t (&field)[VIRTIO_RMEM_NAME_SIZE]) {
  return std::string(reinterpret_cast<const char*>(field),
                     strnlen(reinterpret_cast<const char*>(field), VIRTIO_RMEM_NAME_SIZE));
}

uint32_t StatusOf(const std::vector<uint8_t>& response) {
  EXPECT_GE(response.size(), sizeof(virtio_rmem_resp_hdr));
  if (response.size() < sizeof(virtio_rmem_resp_hdr)) return ~0u;
  return ReadWire<virtio_rmem_resp_hdr>(response).status;
}

class RmemDeviceTest : public BrokerTest {
 protected:
  RmemDeviceTest() : decrypt_(*broker_, kDecrypt), display_(*broker_, kDisplay),
                     info_(*broker_, kInfotainment) {
    for (RmemDevice* d : {&decrypt_, &display_, &info_}) d->SetFeatures(kAllFeatures);
  }

  // Sends `request` with room for `capacity` bytes; checks the response
  // never exceeds it.
  std::vector<uint8_t> Send(RmemDevice& d, const std::vector<uint8_t>& request,
                            size_t capacity = 256) {
    std::vector<uint8_t> response = d.HandleRequest(request, capacity);
    EXPECT_LE(response.size(), capacity);
    return response;
  }
  // Sends a request that must fail with `status` and change nothing.
  void ExpectStatus(RmemDevice& d, const std::vector<uint8_t>& request, uint32_t status,
                    const std::string& message_part = "", size_t capacity = 256) {
    const std::string before = broker_->DebugDump();
    const std::vector<uint8_t> response = Send(d, request, capacity);
    ASSERT_EQ(response.size(), sizeof(virtio_rmem_resp_hdr)) << "a failure is just the header";
    EXPECT_EQ(WireStatusName(StatusOf(response)), std::string(WireStatusName(status)))
        << d.last_error();
    EXPECT_THAT(d.last_error(), HasSubstr(message_part));
    EXPECT_EQ(broker_->DebugDump(), before) << "a rejected request changed state";
  }

  static virtio_rmem_req_alloc AllocReq(uint32_t heap, uint64_t size, uint64_t align = 0) {
    virtio_rmem_req_alloc r{};
    r.hdr.type = VIRTIO_RMEM_REQ_ALLOC;
    r.heap = heap;
    r.size = size;
    r.align = align;
    return r;
  }
  virtio_rmem_resp_alloc Alloc(RmemDevice& d, uint32_t heap, uint64_t size) {
    const std::vector<uint8_t> response = Send(d, Bytes(AllocReq(heap, size)));
    EXPECT_EQ(StatusOf(response), VIRTIO_RMEM_S_OK) << d.last_error();
    EXPECT_EQ(response.size(), sizeof(virtio_rmem_resp_alloc));
    return ReadWire<virtio_rmem_resp_alloc>(response);
  }
  static std::vector<uint8_t> OfferReq(uint32_t type, uint64_t buffer,
                                       std::vector<virtio_rmem_receiver> receivers) {
    virtio_rmem_req_share r{};
    r.hdr.type = type;
    r.buffer = buffer;
    r.num_receivers = static_cast<uint32_t>(receivers.size());
    std::vector<uint8_t> out = Bytes(r);
    for (const virtio_rmem_receiver& x : receivers) AppendWire(out, x);
    return out;
  }
  uint64_t Share(RmemDevice& d, uint64_t buffer, VmId to, uint32_t rights,
                 uint32_t type = VIRTIO_RMEM_REQ_SHARE) {
    const std::vector<uint8_t> response =
        Send(d, OfferReq(type, buffer, {{to.value(), rights}}));
    EXPECT_EQ(StatusOf(response), VIRTIO_RMEM_S_OK) << d.last_error();
    return ReadWire<virtio_rmem_resp_offer>(response).handle;
  }
  static std::vector<uint8_t> HandleReq(uint32_t type, uint64_t handle) {
    virtio_rmem_req_handle r{};
    r.hdr.type = type;
    r.handle = handle;
    return Bytes(r);
  }
  std::vector<virtio_rmem_event> Events(RmemDevice& d) {
    std::vector<virtio_rmem_event> out;
    while (std::optional<virtio_rmem_event> e = d.NextEvent()) out.push_back(*e);
    return out;
  }

  RmemDevice decrypt_, display_, info_;
};

// ---- configuration and discovery ------------------------------------------------

TEST_F(RmemDeviceTest, ConfigDescribesThisVm) {
  const std::vector<uint8_t> bytes = display_.Config();
  ASSERT_EQ(bytes.size(), sizeof(virtio_rmem_config));
  const auto c = ReadWire<virtio_rmem_config>(bytes);
  EXPECT_EQ(c.vm_id, kDisplay.value());
  EXPECT_EQ(c.num_heaps, 3u);
  EXPECT_EQ(c.num_peers, 3u);  // four VMs, not itself
  EXPECT_EQ(c.max_receivers, platform_.max_receivers);
  EXPECT_EQ(c.quota_bytes, 128u * 1024);
}

TEST_F(RmemDeviceTest, SetFeaturesKeepsOnlyOfferedBits) {
  decrypt_.SetFeatures(~uint64_t{0});
  EXPECT_EQ(decrypt_.features(), kOfferedFeatures);
}

TEST_F(RmemDeviceTest, GetHeapDescribesHeapAndThisVmsStanding) {
  virtio_rmem_req_get_heap r{};
  r.hdr.type = VIRTIO_RMEM_REQ_GET_HEAP;
  r.heap = kHeapVideo;
  const std::vector<uint8_t> response = Send(display_, Bytes(r));
  ASSERT_EQ(response.size(), sizeof(virtio_rmem_resp_get_heap));
  const auto h = ReadWire<virtio_rmem_resp_get_heap>(response);
  EXPECT_EQ(h.hdr.status, VIRTIO_RMEM_S_OK);
  EXPECT_EQ(Name(h.name), "secure-video");
  EXPECT_EQ(Name(h.use_case), "secure-video");
  EXPECT_EQ(h.size_bytes, (96 + 64) * 4096u);
  EXPECT_EQ(h.free_bytes, h.size_bytes);
  EXPECT_EQ(h.max_align, 64u * 1024);
  EXPECT_EQ(h.flags, VIRTIO_RMEM_HEAP_F_CPU_MAP);  // display may not allocate here
  EXPECT_EQ(h.rights, VIRTIO_RMEM_RIGHT_READ | VIRTIO_RMEM_RIGHT_CPU_MAP);
}

TEST_F(RmemDeviceTest, GetHeapShowsFreeBytesAndRevokeFlag) {
  Alloc(decrypt_, kHeapGeneral, 8192);
  virtio_rmem_req_get_heap r{};
  r.hdr.type = VIRTIO_RMEM_REQ_GET_HEAP;
  r.heap = kHeapGeneral;
  const auto h = ReadWire<virtio_rmem_resp_get_heap>(Send(decrypt_, Bytes(r)));
  EXPECT_EQ(h.free_bytes, h.size_bytes - 8192);
  EXPECT_EQ(h.flags, VIRTIO_RMEM_HEAP_F_CPU_MAP | VIRTIO_RMEM_HEAP_F_MAY_ALLOC |
                         VIRTIO_RMEM_HEAP_F_REVOKE);
}

TEST_F(RmemDeviceTest, GetHeapPastTheEnd_NotFound) {
  virtio_rmem_req_get_heap r{};
  r.hdr.type = VIRTIO_RMEM_REQ_GET_HEAP;
  r.heap = 3;
  ExpectStatus(decrypt_, Bytes(r), VIRTIO_RMEM_S_NOT_FOUND, "no heap 3");
}

TEST_F(RmemDeviceTest, GetPeerListsEveryOtherVm) {
  std::vector<std::string> names;
  for (uint32_t i = 0; i < 3; ++i) {
    virtio_rmem_req_get_peer r{};
    r.hdr.type = VIRTIO_RMEM_REQ_GET_PEER;
    r.peer = i;
    const std::vector<uint8_t> response = Send(display_, Bytes(r));
    ASSERT_EQ(StatusOf(response), VIRTIO_RMEM_S_OK);
    const auto p = ReadWire<virtio_rmem_resp_get_peer>(response);
    names.push_back(Name(p.name) + "=" + std::to_string(p.vm_id));
  }
  EXPECT_THAT(names, ::testing::ElementsAre("decrypt=1", "infotainment=3", "camera=4"));
  virtio_rmem_req_get_peer past{};
  past.hdr.type = VIRTIO_RMEM_REQ_GET_PEER;
  past.peer = 3;
  ExpectStatus(display_, Bytes(past), VIRTIO_RMEM_S_NOT_FOUND);
}

// ---- the ownership flow -----------------------------------------------------------

TEST_F(RmemDeviceTest, AllocSharesReadOnlyRetrieveAndEvents) {
  const virtio_rmem_resp_alloc a = Alloc(decrypt_, kHeapVideo, 5000);
  EXPECT_EQ(a.size, 8192u);
  EXPECT_NE(a.shm_offset, VIRTIO_RMEM_NO_OFFSET);
  EXPECT_EQ(a.rights, VIRTIO_RMEM_RIGHTS_ALL);
  const uint64_t handle = Share(decrypt_, a.buffer, kDisplay,
                                VIRTIO_RMEM_RIGHT_READ | VIRTIO_RMEM_RIGHT_CPU_MAP);

  const std::vector<virtio_rmem_event> offered = Events(display_);
  ASSERT_EQ(offered.size(), 1u);
  EXPECT_EQ(offered[0].type, VIRTIO_RMEM_EVENT_OFFERED);
  EXPECT_EQ(offered[0].handle, handle);
  EXPECT_EQ(offered[0].peer, kDecrypt.value());
  EXPECT_EQ(offered[0].buffer, 0u) << "receivers never see buffer ids";
  EXPECT_EQ(offered[0].size, 8192u);
  EXPECT_EQ(offered[0].kind, VIRTIO_RMEM_KIND_SHARE);
  EXPECT_EQ(offered[0].heap, kHeapVideo);

  const std::vector<uint8_t> response = Send(display_, HandleReq(VIRTIO_RMEM_REQ_RETRIEVE, handle));
  ASSERT_EQ(response.size(), sizeof(virtio_rmem_resp_retrieve)) << display_.last_error();
  const auto r = ReadWire<virtio_rmem_resp_retrieve>(response);
  EXPECT_EQ(r.hdr.status, VIRTIO_RMEM_S_OK);
  EXPECT_EQ(r.size, 8192u);
  EXPECT_NE(r.shm_offset, VIRTIO_RMEM_NO_OFFSET);
  EXPECT_EQ(r.buffer, 0u);
  EXPECT_EQ(r.owner, kDecrypt.value());
  EXPECT_EQ(r.rights, VIRTIO_RMEM_RIGHT_READ | VIRTIO_RMEM_RIGHT_CPU_MAP);
  EXPECT_EQ(r.kind, VIRTIO_RMEM_KIND_SHARE);

  const std::vector<virtio_rmem_event> retrieved = Events(decrypt_);
  ASSERT_EQ(retrieved.size(), 1u);
  EXPECT_EQ(retrieved[0].type, VIRTIO_RMEM_EVENT_RETRIEVED);
  EXPECT_EQ(retrieved[0].buffer, a.buffer);
  EXPECT_EQ(retrieved[0].peer, kDisplay.value());
}

TEST_F(RmemDeviceTest, HandleNotAddressedToYou_SameAnswerAsNoHandle) {
  const virtio_rmem_resp_alloc a = Alloc(decrypt_, kHeapGeneral, 4096);
  const uint64_t handle = Share(decrypt_, a.buffer, kDisplay, VIRTIO_RMEM_RIGHT_READ);
  // The message names the handle asked for; apart from that it is the same.
  auto without = [](std::string message, uint64_t h) {
    const std::string hex = Hex(h);
    const size_t at = message.find(hex);
    return at == std::string::npos ? message : message.replace(at, hex.size(), "<handle>");
  };
  const uint64_t made_up_handle = handle ^ 0x5a5a;
  const std::vector<uint8_t> stolen = Send(info_, HandleReq(VIRTIO_RMEM_REQ_RETRIEVE, handle));
  const std::string stolen_error = without(info_.last_error(), handle);
  const std::vector<uint8_t> made_up =
      Send(info_, HandleReq(VIRTIO_RMEM_REQ_RETRIEVE, made_up_handle));
  EXPECT_EQ(StatusOf(stolen), VIRTIO_RMEM_S_NOT_FOUND);
  EXPECT_EQ(stolen, made_up);
  EXPECT_EQ(stolen_error, without(info_.last_error(), made_up_handle))
      << "the messages give no oracle either";
}

TEST_F(RmemDeviceTest, SomeoneElsesBufferId_NotFound) {
  const virtio_rmem_resp_alloc a = Alloc(decrypt_, kHeapGeneral, 4096);
  virtio_rmem_req_free f{};
  f.hdr.type = VIRTIO_RMEM_REQ_FREE;
  f.buffer = a.buffer;
  ExpectStatus(info_, Bytes(f), VIRTIO_RMEM_S_NOT_FOUND);
  ExpectStatus(info_, OfferReq(VIRTIO_RMEM_REQ_SHARE, a.buffer, {{kDisplay.value(), 1}}),
               VIRTIO_RMEM_S_NOT_FOUND);
}

TEST_F(RmemDeviceTest, LendRelinquishReclaimFree) {
  const virtio_rmem_resp_alloc a = Alloc(decrypt_, kHeapGeneral, 4096);
  const uint64_t h = Share(decrypt_, a.buffer, kDisplay,
                           VIRTIO_RMEM_RIGHT_READ | VIRTIO_RMEM_RIGHT_WRITE, VIRTIO_RMEM_REQ_LEND);
  ASSERT_EQ(StatusOf(Send(display_, HandleReq(VIRTIO_RMEM_REQ_RETRIEVE, h))), VIRTIO_RMEM_S_OK);
  virtio_rmem_req_free f{};
  f.hdr.type = VIRTIO_RMEM_REQ_FREE;
  f.buffer = a.buffer;
  ExpectStatus(decrypt_, Bytes(f), VIRTIO_RMEM_S_BUSY);  // lent
  virtio_rmem_req_reclaim rc{};
  rc.hdr.type = VIRTIO_RMEM_REQ_RECLAIM;
  rc.buffer = a.buffer;
  ExpectStatus(decrypt_, Bytes(rc), VIRTIO_RMEM_S_BUSY);  // display holds it
  ASSERT_EQ(StatusOf(Send(display_, HandleReq(VIRTIO_RMEM_REQ_RELINQUISH, h))), VIRTIO_RMEM_S_OK);
  ExpectStatus(display_, HandleReq(VIRTIO_RMEM_REQ_RELINQUISH, h), VIRTIO_RMEM_S_BUSY);
  const std::vector<uint8_t> reclaimed = Send(decrypt_, Bytes(rc));
  ASSERT_EQ(StatusOf(reclaimed), VIRTIO_RMEM_S_OK) << decrypt_.last_error();
  ASSERT_EQ(reclaimed.size(), sizeof(virtio_rmem_resp_reclaim));
  EXPECT_NE(ReadWire<virtio_rmem_resp_reclaim>(reclaimed).shm_offset, VIRTIO_RMEM_NO_OFFSET)
      << "the owner's mapping is back, and RECLAIM says where";
  ASSERT_EQ(StatusOf(Send(decrypt_, Bytes(f))), VIRTIO_RMEM_S_OK) << decrypt_.last_error();
}

TEST_F(RmemDeviceTest, Reclaim_ResponseNeedsSixteenBytes) {
  const virtio_rmem_resp_alloc a = Alloc(decrypt_, kHeapGeneral, 4096);
  Share(decrypt_, a.buffer, kDisplay, VIRTIO_RMEM_RIGHT_READ);
  virtio_rmem_req_reclaim rc{};
  rc.hdr.type = VIRTIO_RMEM_REQ_RECLAIM;
  rc.buffer = a.buffer;
  ExpectStatus(decrypt_, Bytes(rc), VIRTIO_RMEM_S_INVALID, "RECLAIM needs 16 writable bytes",
               sizeof(virtio_rmem_resp_hdr));
}

TEST_F(RmemDeviceTest, ReclaimWithRevokeRevokesTheBorrower) {
  const virtio_rmem_resp_alloc a = Alloc(decrypt_, kHeapGeneral, 4096);
  const uint64_t h = Share(decrypt_, a.buffer, kDisplay, VIRTIO_RMEM_RIGHT_READ);
  ASSERT_EQ(StatusOf(Send(display_, HandleReq(VIRTIO_RMEM_REQ_RETRIEVE, h))), VIRTIO_RMEM_S_OK);
  Events(display_);
  virtio_rmem_req_reclaim rc{};
  rc.hdr.type = VIRTIO_RMEM_REQ_RECLAIM;
  rc.buffer = a.buffer;
  rc.flags = VIRTIO_RMEM_RECLAIM_REVOKE;
  ASSERT_EQ(StatusOf(Send(decrypt_, Bytes(rc))), VIRTIO_RMEM_S_OK) << decrypt_.last_error();
  const std::vector<virtio_rmem_event> e = Events(display_);
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].type, VIRTIO_RMEM_EVENT_REVOKED);
  EXPECT_EQ(e[0].handle, h);
}

TEST_F(RmemDeviceTest, DonateMovesOwnership) {
  const virtio_rmem_resp_alloc a = Alloc(decrypt_, kHeapGeneral, 4096);
  virtio_rmem_req_donate d{};
  d.hdr.type = VIRTIO_RMEM_REQ_DONATE;
  d.buffer = a.buffer;
  d.vm_id = kDisplay.value();
  const std::vector<uint8_t> offer = Send(decrypt_, Bytes(d));
  ASSERT_EQ(StatusOf(offer), VIRTIO_RMEM_S_OK) << decrypt_.last_error();
  const uint64_t h = ReadWire<virtio_rmem_resp_offer>(offer).handle;
  const auto r = ReadWire<virtio_rmem_resp_retrieve>(
      Send(display_, HandleReq(VIRTIO_RMEM_REQ_RETRIEVE, h)));
  ASSERT_EQ(r.hdr.status, VIRTIO_RMEM_S_OK) << display_.last_error();
  EXPECT_EQ(r.kind, VIRTIO_RMEM_KIND_DONATE);
  EXPECT_NE(r.buffer, 0u);
  virtio_rmem_req_free f{};
  f.hdr.type = VIRTIO_RMEM_REQ_FREE;
  f.buffer = r.buffer;
  EXPECT_EQ(StatusOf(Send(display_, Bytes(f))), VIRTIO_RMEM_S_OK) << display_.last_error();
  const std::vector<virtio_rmem_event> donor = Events(decrypt_);
  ASSERT_EQ(donor.size(), 1u);
  EXPECT_EQ(donor[0].type, VIRTIO_RMEM_EVENT_DONATED);
}

TEST_F(RmemDeviceTest, GuestGoneRelinquishesWhatItBorrowed) {
  const virtio_rmem_resp_alloc a = Alloc(decrypt_, kHeapGeneral, 4096);
  const uint64_t h = Share(decrypt_, a.buffer, kDisplay, VIRTIO_RMEM_RIGHT_READ);
  ASSERT_EQ(StatusOf(Send(display_, HandleReq(VIRTIO_RMEM_REQ_RETRIEVE, h))), VIRTIO_RMEM_S_OK);
  Events(decrypt_);
  ASSERT_TRUE(display_.GuestGone().ok());
  const std::vector<virtio_rmem_event> e = Events(decrypt_);
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].type, VIRTIO_RMEM_EVENT_RELINQUISHED);
  EXPECT_EQ(e[0].reason, VIRTIO_RMEM_REASON_PEER_GONE);
}

TEST_F(RmemDeviceTest, PolicyAndQuotaStatuses) {
  ExpectStatus(display_, Bytes(AllocReq(kHeapVideo, 4096)), VIRTIO_RMEM_S_DENIED);
  ExpectStatus(info_, Bytes(AllocReq(kHeapGeneral, 64 * 1024)), VIRTIO_RMEM_S_NO_SPACE);
  const virtio_rmem_resp_alloc a = Alloc(decrypt_, kHeapDeviceOnly, 4096);
  EXPECT_EQ(a.shm_offset, VIRTIO_RMEM_NO_OFFSET) << "device-only buffers are never CPU-mapped";
  ExpectStatus(decrypt_,
               OfferReq(VIRTIO_RMEM_REQ_SHARE, a.buffer,
                        {{kDisplay.value(), VIRTIO_RMEM_RIGHT_READ | VIRTIO_RMEM_RIGHT_CPU_MAP}}),
               VIRTIO_RMEM_S_DENIED);
}

// ---- malformed requests (section 7.1) ------------------------------------------------

TEST_F(RmemDeviceTest, ShortHeader_Invalid) {
  ExpectStatus(decrypt_, {0x10, 0, 0, 0}, VIRTIO_RMEM_S_INVALID, "no 8-byte header");
  ExpectStatus(decrypt_, {}, VIRTIO_RMEM_S_INVALID);
}

TEST_F(RmemDeviceTest, UnknownType_UnsupportedWhateverItsLength) {
  virtio_rmem_req_hdr h{};
  h.type = 0x99;
  ExpectStatus(decrypt_, Bytes(h), VIRTIO_RMEM_S_UNSUPPORTED, "unknown request type 0x99");
  std::vector<uint8_t> longer(100, 0xff);
  std::memcpy(longer.data(), &h, sizeof(h));
  ExpectStatus(decrypt_, longer, VIRTIO_RMEM_S_UNSUPPORTED);
}

TEST_F(RmemDeviceTest, FeatureNotNegotiated_Unsupported) {
  RmemDevice plain(*broker_, kDecrypt);  // features never set
  const virtio_rmem_resp_alloc a = Alloc(decrypt_, kHeapGeneral, 4096);
  ExpectStatus(plain, OfferReq(VIRTIO_RMEM_REQ_LEND, a.buffer, {{kDisplay.value(), 1}}),
               VIRTIO_RMEM_S_UNSUPPORTED, "VIRTIO_RMEM_F_LEND_DONATE");
  virtio_rmem_req_donate d{};
  d.hdr.type = VIRTIO_RMEM_REQ_DONATE;
  d.buffer = a.buffer;
  d.vm_id = kDisplay.value();
  ExpectStatus(plain, Bytes(d), VIRTIO_RMEM_S_UNSUPPORTED);
  virtio_rmem_req_reclaim rc{};
  rc.hdr.type = VIRTIO_RMEM_REQ_RECLAIM;
  rc.buffer = a.buffer;
  rc.flags = VIRTIO_RMEM_RECLAIM_REVOKE;
  ExpectStatus(plain, Bytes(rc), VIRTIO_RMEM_S_UNSUPPORTED, "VIRTIO_RMEM_F_RECLAIM_REVOKE");
}

TEST_F(RmemDeviceTest, WrongLength_InvalidForEveryFixedType) {
  for (const uint32_t type :
       {VIRTIO_RMEM_REQ_GET_HEAP, VIRTIO_RMEM_REQ_GET_PEER, VIRTIO_RMEM_REQ_ALLOC,
        VIRTIO_RMEM_REQ_FREE, VIRTIO_RMEM_REQ_DONATE, VIRTIO_RMEM_REQ_RETRIEVE,
        VIRTIO_RMEM_REQ_RELINQUISH, VIRTIO_RMEM_REQ_RECLAIM}) {
    SCOPED_TRACE(RequestTypeName(type));
    virtio_rmem_req_alloc big{};  // 32 bytes: longer than every other fixed type
    big.hdr.type = type;
    std::vector<uint8_t> bytes = Bytes(big);
    bytes.resize(33);
    ExpectStatus(decrypt_, bytes, VIRTIO_RMEM_S_INVALID, "must be");
    bytes.resize(12);
    ExpectStatus(decrypt_, bytes, VIRTIO_RMEM_S_INVALID, "must be");
  }
}

TEST_F(RmemDeviceTest, ReservedFieldsAndFlags_Invalid) {
  virtio_rmem_req_get_heap g{};
  g.hdr.type = VIRTIO_RMEM_REQ_GET_HEAP;
  g.hdr.reserved = 1;
  ExpectStatus(decrypt_, Bytes(g), VIRTIO_RMEM_S_INVALID, "reserved");
  g.hdr.reserved = 0;
  g.reserved = 1;
  ExpectStatus(decrypt_, Bytes(g), VIRTIO_RMEM_S_INVALID, "reserved");
  virtio_rmem_req_alloc a = AllocReq(kHeapGeneral, 4096);
  a.flags = 2;
  ExpectStatus(decrypt_, Bytes(a), VIRTIO_RMEM_S_INVALID, "undefined flags 0x2");
  virtio_rmem_req_reclaim rc{};
  rc.hdr.type = VIRTIO_RMEM_REQ_RECLAIM;
  rc.flags = 2;
  ExpectStatus(decrypt_, Bytes(rc), VIRTIO_RMEM_S_INVALID, "undefined flags");
}

TEST_F(RmemDeviceTest, ReceiverLists_Invalid) {
  const virtio_rmem_resp_alloc a = Alloc(decrypt_, kHeapGeneral, 4096);
  ExpectStatus(decrypt_, OfferReq(VIRTIO_RMEM_REQ_SHARE, a.buffer, {}), VIRTIO_RMEM_S_INVALID,
               "names 0 receivers");
  std::vector<virtio_rmem_receiver> many(platform_.max_receivers + 1, {2, 1});
  ExpectStatus(decrypt_, OfferReq(VIRTIO_RMEM_REQ_SHARE, a.buffer, many), VIRTIO_RMEM_S_INVALID,
               "receivers");
  ExpectStatus(decrypt_, OfferReq(VIRTIO_RMEM_REQ_SHARE, a.buffer, {{2, 0x8}}),
               VIRTIO_RMEM_S_INVALID, "undefined rights bits 0x8");
  std::vector<uint8_t> truncated = OfferReq(VIRTIO_RMEM_REQ_SHARE, a.buffer, {{2, 1}, {3, 1}});
  truncated.resize(truncated.size() - 8);  // says two, carries one
  ExpectStatus(decrypt_, truncated, VIRTIO_RMEM_S_INVALID, "must be 40 bytes");
  ExpectStatus(decrypt_, OfferReq(VIRTIO_RMEM_REQ_SHARE, a.buffer, {{2, 1}, {2, 1}}),
               VIRTIO_RMEM_S_INVALID);  // twice
  ExpectStatus(decrypt_, OfferReq(VIRTIO_RMEM_REQ_SHARE, a.buffer, {{1, 1}}),
               VIRTIO_RMEM_S_INVALID);  // itself
  ExpectStatus(decrypt_, OfferReq(VIRTIO_RMEM_REQ_SHARE, a.buffer, {{2, 0}}),
               VIRTIO_RMEM_S_INVALID);  // empty rights
  ExpectStatus(decrypt_, OfferReq(VIRTIO_RMEM_REQ_SHARE, a.buffer, {{77, 1}}),
               VIRTIO_RMEM_S_NOT_FOUND);  // not a VM
}

TEST_F(RmemDeviceTest, OverflowingSizesAndAlignments_Invalid) {
  ExpectStatus(decrypt_, Bytes(AllocReq(kHeapGeneral, ~uint64_t{0})), VIRTIO_RMEM_S_INVALID,
               "overflows");
  ExpectStatus(decrypt_, Bytes(AllocReq(kHeapGeneral, 0)), VIRTIO_RMEM_S_INVALID, "size is 0");
  ExpectStatus(decrypt_, Bytes(AllocReq(kHeapGeneral, 4096, 3 * 4096)), VIRTIO_RMEM_S_INVALID,
               "power of two");
  ExpectStatus(decrypt_, Bytes(AllocReq(kHeapGeneral, 4096, uint64_t{1} << 63)),
               VIRTIO_RMEM_S_INVALID, "exceeds");
  ExpectStatus(decrypt_, Bytes(AllocReq(7, 4096)), VIRTIO_RMEM_S_NOT_FOUND, "no heap 7");
}

TEST_F(RmemDeviceTest, TooLittleRoomForTheResponse) {
  // Under 8 bytes: nothing can be said; the chain is returned empty.
  const std::string before = broker_->DebugDump();
  EXPECT_TRUE(decrypt_.HandleRequest(Bytes(AllocReq(kHeapGeneral, 4096)), 7).empty());
  EXPECT_EQ(decrypt_.counters().unanswerable, 1u);
  EXPECT_EQ(broker_->DebugDump(), before);
  // 8 bytes but less than ALLOC's 40: INVALID, and no buffer was made.
  ExpectStatus(decrypt_, Bytes(AllocReq(kHeapGeneral, 4096)), VIRTIO_RMEM_S_INVALID,
               "needs 40 writable bytes", 39);
}

// ---- hostile bytes -----------------------------------------------------------------

// Any bytes, any room: the response is empty (room < 8), a bare header with
// a defined failure status, or OK with exactly the type's response size; a
// failure changes nothing.
RC_GTEST_FIXTURE_PROP(RmemDeviceTest, AnyBytesGetADefinedAnswer, ()) {
  const auto type = *rc::gen::element<uint32_t>(
      VIRTIO_RMEM_REQ_GET_HEAP, VIRTIO_RMEM_REQ_GET_PEER, VIRTIO_RMEM_REQ_ALLOC,
      VIRTIO_RMEM_REQ_FREE, VIRTIO_RMEM_REQ_SHARE, VIRTIO_RMEM_REQ_LEND, VIRTIO_RMEM_REQ_DONATE,
      VIRTIO_RMEM_REQ_RETRIEVE, VIRTIO_RMEM_REQ_RELINQUISH, VIRTIO_RMEM_REQ_RECLAIM, 0u, 0x99u);
  std::vector<uint8_t> bytes = *rc::gen::container<std::vector<uint8_t>>(
      *rc::gen::inRange<size_t>(0, 64), rc::gen::arbitrary<uint8_t>());
  if (bytes.size() >= 4) std::memcpy(bytes.data(), &type, 4);
  const size_t capacity = *rc::gen::inRange<size_t>(0, 130);
  RmemDevice& device = **rc::gen::element(&decrypt_, &display_, &info_);
  const std::string before = broker_->DebugDump();
  const std::vector<uint8_t> response = device.HandleRequest(bytes, capacity);
  RC_ASSERT(response.size() <= capacity);
  if (capacity < 8) {
    RC_ASSERT(response.empty());
    RC_ASSERT(broker_->DebugDump() == before);
    return;
  }
  RC_ASSERT(response.size() >= 8);
  const uint32_t status = ReadWire<virtio_rmem_resp_hdr>(response).status;
  RC_ASSERT(status <= VIRTIO_RMEM_S_DEVICE_ERROR);
  if (status != VIRTIO_RMEM_S_OK) {
    RC_ASSERT(response.size() == 8u);
    RC_ASSERT(broker_->DebugDump() == before);
  }
}

}  // namespace
}  // namespace rmem::virtio_rmem
