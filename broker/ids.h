// Id sequences for buffers and handles: 64-bit values that are never 0,
// never repeat, and cannot be predicted from earlier ones without the key.
//
// Each value is a keyed permutation of a counter: a 4-round Feistel network
// over two 32-bit halves whose round function is SipHash-2-4. A permutation
// of a never-repeating counter never repeats; the key (random per broker,
// persisted with the counter) makes the next value unguessable. Knowing a
// handle gives nothing anyway unless the VM was named in it; this is
// defence in depth against guessing other guests' ids.
#pragma once

#include <cstdint>

namespace rmem {

struct IdKey {
  uint64_t k0 = 0;
  uint64_t k1 = 0;
  // A fresh key from the operating system's entropy.
  static IdKey Random();
};

// SipHash-2-4 of one 64-bit little-endian word (8 message bytes).
uint64_t SipHash24(const IdKey& key, uint64_t word);

class IdSequence {
 public:
  explicit IdSequence(IdKey key, uint64_t next_counter = 1) : key_(key), counter_(next_counter) {}

  // The next id: never 0, never a value returned before by a sequence with
  // this key whose counter started at or below this one.
  uint64_t Next();
  // The permutation itself (exposed for tests).
  uint64_t Permute(uint64_t counter) const;
  // Where the sequence continues; persist it to resume without reuse.
  uint64_t next_counter() const { return counter_; }
  const IdKey& key() const { return key_; }

 private:
  IdKey key_;
  uint64_t counter_;
};

}  // namespace rmem
