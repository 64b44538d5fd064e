// The human-readable tables rmemctl prints from rmemd's JSON: the status
// document (broker/rmemd/status.h) and audit entries (AuditEntryJson in
// broker/rmemd/control_protocol.h). A field that is missing or of another
// type (an rmemd of another version) prints as "?" instead of stopping
// rmemctl.
#pragma once

#include <string>

#include "broker/rmemd/control_protocol.h"

namespace rmem::rmemctl {

std::string StatusTable(const rmemd::Json& status);
// `entries`: an array of audit entries, oldest first.
std::string AuditTable(const rmemd::Json& entries);

}  // namespace rmem::rmemctl
