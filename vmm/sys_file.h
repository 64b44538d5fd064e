// Whole-file reads and writes with errors that name the file.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace rmem::vmm {

// The file's bytes; `what` names it in errors ("kernel image"). FailedPrecondition
// if it is larger than `max_size`.
absl::StatusOr<std::vector<uint8_t>> ReadWholeFile(const std::string& path, const char* what,
                                                   uint64_t max_size);
absl::Status WriteWholeFile(const std::string& path, std::span<const uint8_t> bytes);

}  // namespace rmem::vmm
