// libFuzzer target: the split virtqueue's descriptor-chain walker and ring
// over guest memory the input fills (descriptor table, available ring,
// buffers), as a hostile driver would. Any outcome is fine; a crash, a
// sanitizer report, or an accepted chain that breaks the walker's promises
// (at most queue-size descriptors, at most kMaxChainBytes, every writable
// byte inside guest memory) is a bug.
//
// Input: [log2 queue size][head lo][head hi][avail idx lo][avail idx hi]
// then guest memory. Guest memory is two regions adjacent in guest space
// but apart in host memory (so a range straddling them must be refused):
// guest 0x10000 + 32 KiB and 0x18000 + 32 KiB. The rings sit at the start
// of the first: descriptors at 0x10000, available ring at 0x11000, used
// ring at 0x12000.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "virtio_rmem/virtqueue/descriptor_chain.h"
#include "virtio_rmem/virtqueue/guest_memory_map.h"
#include "virtio_rmem/virtqueue/split_queue.h"

namespace {

using rmem::GuestAddr;
using namespace rmem::virtio_rmem;

constexpr size_t kRegion = 32 * 1024;
constexpr size_t kHeader = 5;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < kHeader) return 0;
  const uint16_t queue_size = static_cast<uint16_t>(1u << (data[0] % 9));  // 1 to 256
  const uint16_t head = static_cast<uint16_t>(data[1] | data[2] << 8);
  const uint16_t first_avail = static_cast<uint16_t>(data[3] | data[4] << 8);
  // Two separate allocations: adjacent in guest space only.
  std::vector<uint8_t> a(kRegion, 0), b(kRegion, 0);
  const size_t body = size - kHeader;
  std::memcpy(a.data(), data + kHeader, std::min(body, kRegion));
  if (body > kRegion)
    std::memcpy(b.data(), data + kHeader + kRegion, std::min(body - kRegion, kRegion));
  absl::StatusOr<GuestMemoryMap> memory = GuestMemoryMap::Create(
      {{GuestAddr(0x10000), kRegion, a.data()}, {GuestAddr(0x18000), kRegion, b.data()}});
  if (!memory.ok()) std::abort();

  // The walker on its own, from any head (also out of range).
  const std::span<const uint8_t> table(a.data(), 16u * queue_size);
  absl::StatusOr<DescriptorChain> chain = WalkChain(table, queue_size, head, *memory);
  if (chain.ok()) {
    if (chain->descriptor_count() > queue_size) std::abort();
    if (chain->readable().size() + chain->writable_size() > kMaxChainBytes) std::abort();
    // Filling the whole writable part must stay inside guest memory (ASan
    // checks the host side of it).
    std::vector<uint8_t> fill(chain->writable_size(), 0xee);
    if (!chain->Write(0, fill)) std::abort();
    if (chain->Write(1, fill) && !fill.empty()) std::abort();  // one byte too many
  }

  // The ring: take what the available ring offers, give it back used.
  absl::StatusOr<SplitQueue> queue = SplitQueue::Create(queue_size,
                                                        {{a.data(), 16u * queue_size},
                                                         {a.data() + 0x1000, 6 + 2u * queue_size},
                                                         {a.data() + 0x2000, 6 + 8u * queue_size}},
                                                        first_avail);
  if (!queue.ok()) std::abort();  // the layout above is always valid
  for (int i = 0; i <= queue_size; ++i) {
    absl::StatusOr<std::optional<SplitQueue::Popped>> p = queue->Pop(*memory);
    if (!p.ok() || !p->has_value()) break;  // a corrupt ring ends the queue
    if ((*p)->head >= queue_size) std::abort();
    const uint32_t written = (*p)->chain.ok() ? (*p)->chain->writable_size() : 0;
    queue->PushUsed((*p)->head, written);
    (void)queue->ShouldNotify();
  }
  if (queue->next_used() != queue->next_avail()) std::abort();
  return 0;
}
