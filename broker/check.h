// CHECK for our own invariants (STYLE.md rule 4: our bugs crash, guests'
// mistakes return a Status). Debian's Abseil has no absl/log, so this is
// ours: always on, prints the condition and location, then aborts.
#pragma once

#include <cstdio>
#include <cstdlib>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace rmem::internal {
inline const absl::Status& StatusOf(const absl::Status& s) { return s; }
template <typename T>
const absl::Status& StatusOf(const absl::StatusOr<T>& s) {
  return s.status();
}
}  // namespace rmem::internal

#define RMEM_CHECK(cond)                                                            \
  do {                                                                              \
    if (__builtin_expect(!(cond), 0)) {                                             \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                 \
    }                                                                               \
  } while (0)

// For a Status (or StatusOr) our own code guarantees is OK.
#define RMEM_CHECK_OK(expr)                                                               \
  do {                                                                                    \
    const absl::Status rmem_check_status_ = ::rmem::internal::StatusOf(expr);             \
    if (__builtin_expect(!rmem_check_status_.ok(), 0)) {                                  \
      std::fprintf(stderr, "%s:%d: CHECK_OK failed: %s: %s\n", __FILE__, __LINE__, #expr, \
                   rmem_check_status_.ToString().c_str());                                \
      std::abort();                                                                       \
    }                                                                                     \
  } while (0)
