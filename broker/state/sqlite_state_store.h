// SqliteStateStore: the broker's state in an SQLite database (WAL mode), by
// default /run/rmemd/state.db. One rmemd at a time: the store holds an
// exclusive lock on "<path>.lock" while open; readers (rmemctl audit) open
// the database read-only beside it.
//
// Durability: every Commit is one SQLite transaction, written to the WAL
// before Commit returns (synchronous=NORMAL): a committed request survives
// rmemd being killed at any instant. It is not flushed to stable storage
// per request: /run is memory, like the carve-outs whose state it describes
// (after a power cut neither the buffers nor the VMs exist any more).
//
// Schema (PRAGMA application_id 'rmem', user_version 1): ids, buffers,
// txns, receivers, audit; see sqlite_state_store.cc and docs/reliability.md.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "broker/state/state_store.h"

struct sqlite3;
struct sqlite3_stmt;

namespace rmem {

class SqliteStateStore : public StateStore {
 public:
  static constexpr int kSchemaVersion = 1;
  static constexpr int32_t kApplicationId = 0x726d656d;  // "rmem"

  struct Options {
    // Discard whatever the file holds and start empty (--reset-state).
    bool reset = false;
    // Audit entries kept; older ones are deleted as new ones come (0: all).
    uint64_t audit_limit = 1'000'000;
  };

  // Opens or creates the database at `path` (its directory must exist).
  // FailedPrecondition, naming the path and --reset-state: the file is not
  // an rmem state database, fails SQLite's integrity check, or was written
  // by a newer rmemd. Unavailable: it cannot be opened or created (missing
  // directory, read-only, no space), or another process holds it.
  static absl::StatusOr<std::unique_ptr<SqliteStateStore>> Open(const std::string& path,
                                                                Options options);
  // Opens an existing database read-only, for rmemctl (no lock taken).
  static absl::StatusOr<std::unique_ptr<SqliteStateStore>> OpenReadOnly(const std::string& path);
  ~SqliteStateStore() override;

  absl::StatusOr<std::optional<StoredState>> Load() override;
  absl::Status Commit(const StateDelta& delta, const StoredState* replace_first) override;
  absl::StatusOr<std::vector<AuditEntry>> ReadAudit(uint64_t after_seq, size_t max) override;

  const std::string& path() const { return path_; }
  // Test hook: the database may grow to at most this many pages (SQLite's
  // max_page_count), so that "disk full" can be produced on any filesystem.
  absl::Status LimitPagesForTest(uint64_t pages);

 private:
  class Statement;
  SqliteStateStore(std::string path, Options options, sqlite3* db, int lock_fd);
  absl::Status Exec(const char* sql);
  absl::Status Fail(const char* doing) const;  // the connection's error, with the path
  absl::Status CheckAndCreateSchema();
  absl::Status PrepareStatements();
  absl::Status Apply(const StateDelta& delta, const StoredState* replace_first);
  absl::Status PutBuffer(const StoredBuffer& b);
  absl::Status DropBuffer(BufferId id);
  absl::Status PutTxn(const Transaction& t);
  absl::Status DropTxn(Handle h);
  absl::Status PutIds(const char* name, const StoredIds& ids);
  absl::Status AddAudit(const AuditEntry& e, int64_t now_ns);

  std::string path_;
  Options options_;
  sqlite3* db_;
  int lock_fd_;
  std::unique_ptr<Statement> put_buffer_, drop_buffer_, drop_buffer_txn_receivers_,
      drop_buffer_txns_, put_txn_, drop_receivers_, put_receiver_, drop_txn_, put_ids_,
      add_audit_, trim_audit_;
};

}  // namespace rmem
