#include "broker/rmemd/firmware_source.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "broker/platform/default_platform.h"

namespace rmem::rmemd {
namespace {

// The largest blob we read: transfer lists and device trees are small.
constexpr std::streamoff kMaxBlob = 64 << 20;

absl::StatusOr<std::vector<uint64_t>> ReadAligned(const std::string& path, size_t* size) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) {
    const int err = errno;
    const std::string msg = absl::StrCat("cannot open ", path, ": ", std::strerror(err));
    return err == ENOENT ? absl::NotFoundError(msg) : absl::PermissionDeniedError(msg);
  }
  const std::streamoff n = in.tellg();
  if (n < 0 || n > kMaxBlob) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, " is larger than ", kMaxBlob >> 20, " MiB"));
  }
  std::vector<uint64_t> words((static_cast<size_t>(n) + 7) / 8);
  in.seekg(0);
  if (n > 0 && !in.read(reinterpret_cast<char*>(words.data()), n)) {
    return absl::DataLossError(absl::StrCat("reading ", path, " failed"));
  }
  *size = static_cast<size_t>(n);
  return words;
}

}  // namespace

std::string Describe(const FirmwareSource& source) {
  switch (source.kind) {
    case FirmwareSource::Kind::kDefault:
      return "the embedded default platform";
    case FirmwareSource::Kind::kFdt:
      return absl::StrCat("device tree ", source.path);
    case FirmwareSource::Kind::kTransferList:
      return absl::StrCat("transfer list ", source.path);
  }
  return "?";
}

absl::StatusOr<firmware_handoff::PlatformResult> ReadFirmware(const FirmwareSource& source) {
  if (source.kind == FirmwareSource::Kind::kDefault) {
    return firmware_handoff::ReadPlatformFromFdt(platform::DefaultPlatformDtb());
  }
  size_t size = 0;
  absl::StatusOr<std::vector<uint64_t>> words = ReadAligned(source.path, &size);
  if (!words.ok()) return words.status();
  const std::span<const uint8_t> blob(reinterpret_cast<const uint8_t*>(words->data()), size);
  return source.kind == FirmwareSource::Kind::kFdt
             ? firmware_handoff::ReadPlatformFromFdt(blob)
             : firmware_handoff::ReadPlatformFromTransferList(blob);
}

}  // namespace rmem::rmemd
