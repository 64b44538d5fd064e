// SipHash-2-4 and the keyed Feistel permutation behind IdSequence.
#include "broker/ids.h"

#include "absl/random/random.h"
#include "absl/random/uniform_int_distribution.h"

namespace rmem {
namespace {

constexpr uint64_t Rotl(uint64_t v, int s) { return (v << s) | (v >> (64 - s)); }

struct SipState {
  uint64_t v0, v1, v2, v3;
  void Round() {
    v0 += v1;
    v1 = Rotl(v1, 13);
    v1 ^= v0;
    v0 = Rotl(v0, 32);
    v2 += v3;
    v3 = Rotl(v3, 16);
    v3 ^= v2;
    v0 += v3;
    v3 = Rotl(v3, 21);
    v3 ^= v0;
    v2 += v1;
    v1 = Rotl(v1, 17);
    v1 ^= v2;
    v2 = Rotl(v2, 32);
  }
  void Compress(uint64_t m) {
    v3 ^= m;
    Round();
    Round();
    v0 ^= m;
  }
};

}  // namespace

IdKey IdKey::Random() {
  absl::BitGen gen;  // Randen, seeded from the OS entropy pool.
  return IdKey{absl::Uniform<uint64_t>(gen), absl::Uniform<uint64_t>(gen)};
}

uint64_t SipHash24(const IdKey& key, uint64_t word) {
  SipState s{key.k0 ^ 0x736f6d6570736575ULL, key.k1 ^ 0x646f72616e646f6dULL,
             key.k0 ^ 0x6c7967656e657261ULL, key.k1 ^ 0x7465646279746573ULL};
  s.Compress(word);
  s.Compress(uint64_t{8} << 56);  // message length 8, no tail bytes
  s.v2 ^= 0xff;
  for (int i = 0; i < 4; ++i) s.Round();
  return s.v0 ^ s.v1 ^ s.v2 ^ s.v3;
}

uint64_t IdSequence::Permute(uint64_t counter) const {
  uint32_t left = static_cast<uint32_t>(counter >> 32);
  uint32_t right = static_cast<uint32_t>(counter);
  for (uint64_t round = 0; round < 4; ++round) {
    const uint32_t f = static_cast<uint32_t>(SipHash24(key_, (round << 32) | right));
    const uint32_t next_right = left ^ f;
    left = right;
    right = next_right;
  }
  return (uint64_t{left} << 32) | right;
}

uint64_t IdSequence::Next() {
  for (;;) {
    const uint64_t id = Permute(counter_++);
    if (id != 0) return id;  // exactly one counter value maps to 0; skip it
  }
}

}  // namespace rmem
