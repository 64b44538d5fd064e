// TEST ONLY: how many fds this process has open, for leak checks.
#pragma once

#include <dirent.h>

namespace rmem::testing {

inline int OpenFdCount() {
  int n = 0;
  DIR* d = opendir("/proc/self/fd");
  while (readdir(d) != nullptr) ++n;
  closedir(d);
  return n;
}

}  // namespace rmem::testing
