// The status document rmemd's control socket answers `status` with
// (control_protocol.h), built from the running service through read-only
// views only. docs/rmemd.md lists every field; in short:
//
//   rmemd      pid, carve-out memory, state file (null: --no-state), whether
//              a teardown still waits to be recorded
//   carveouts  name, use_case, base, size, the heaps over it, firewall
//              (controller and region/block index, null: unguarded)
//   pools      per carve-out: total, free, used bytes, largest_free_run,
//              free_runs, fragmentation = 1 - largest_free_run / free (0
//              when nothing or one run is free; towards 1 as free memory
//              splinters)
//   heaps      name, carve-outs, cpu_map, owner_may_revoke, quota (null:
//              unlimited), owned (bytes of its buffers), total, free
//   guests     id, name, socket, vmm_connected, vmm_connects, quota, owned,
//              region_size, mappings, mapped_bytes, restored_waiting,
//              requests, refused (per status), unanswerable,
//              events_delivered, events_queued, events_dropped
//   buffers    id, heap, carveout, base, size, owner, state, owner_rights,
//              offer (its open offer's handle or null), holders (vm, rights)
//   offers     handle, kind, buffer, from, to: [{vm, rights, state}]
//   grants     per buffer per VM holding it: buffer, vm, as (owner or
//              receiver), rights, mapped, region_offset (null: not mapped)
//   firewall   what each controller lets every id do, read from the
//              models' registers (PlatformFirewalls::AccessRuns): runs of
//              controller, base, size, access: [{id, access}]
//   counters   requests_served, requests_refused (per status),
//              requests_unanswerable, bytes_scrubbed (since start, the
//              start-up scrub included)
//
// Addresses, sizes, ids and handles are JSON numbers; lists are in a fixed
// order (carve-outs and heaps as configured, guests as configured, buffers
// by id, offers by handle), so two documents of the same state are equal.
// Loop thread only.
#pragma once

#include <nlohmann/json.hpp>

#include "broker/rmemd/control_protocol.h"
#include "broker/rmemd/service.h"

namespace rmem::rmemd {

Json StatusDocument(const Service& service);

}  // namespace rmem::rmemd
