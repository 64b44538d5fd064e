#include "broker/state/state_store.h"

namespace rmem {

bool StoredBuffer::operator==(const StoredBuffer& o) const {
  const Buffer& a = buffer;
  const Buffer& b = o.buffer;
  return a.id == b.id && a.owner == b.owner && a.pages == b.pages &&
         a.owner_rights == b.owner_rights && a.state == b.state && a.txn == b.txn &&
         a.mapped_at == b.mapped_at && heap == o.heap && carveout == o.carveout;
}

const char* AuditActionName(AuditAction a) {
  switch (a) {
    case AuditAction::kGrant:
      return "grant";
    case AuditAction::kRevoke:
      return "revoke";
    case AuditAction::kOffer:
      return "offer";
  }
  return "?";
}

}  // namespace rmem
