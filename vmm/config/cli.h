// rmem-vmm's command line. Parsing is separate from main() so that every
// rule (required options, ranges, unknown options) is unit tested.
#pragma once

#include <string>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "vmm/config/vm_config.h"

namespace rmem::vmm {

// The --help text.
std::string Usage();

struct HelpRequested {};

// Parses argv[1..]. Either a config, HelpRequested, or InvalidArgument whose
// message names the offending option and value.
absl::StatusOr<std::variant<VmConfig, HelpRequested>> ParseCommandLine(
    const std::vector<std::string>& args);

}  // namespace rmem::vmm
