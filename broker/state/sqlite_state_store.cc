#include "broker/state/sqlite_state_store.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "broker/check.h"

namespace rmem {
namespace {

// Version 1. Ids are 64-bit values stored as SQLite's signed integers (the
// same bits); page ranges as first pfn and count; rights as their bits;
// states and kinds as their enum values.
constexpr const char* kSchema = R"sql(
CREATE TABLE ids(
  name TEXT PRIMARY KEY,               -- 'buffer' or 'handle'
  k0 INTEGER NOT NULL, k1 INTEGER NOT NULL,
  next INTEGER NOT NULL);
CREATE TABLE buffers(
  id INTEGER PRIMARY KEY,
  owner INTEGER NOT NULL,
  heap TEXT NOT NULL, carveout TEXT NOT NULL,
  first_pfn INTEGER NOT NULL, pages INTEGER NOT NULL,
  rights INTEGER NOT NULL, state INTEGER NOT NULL,
  txn INTEGER, mapped_at INTEGER);
CREATE TABLE txns(
  handle INTEGER PRIMARY KEY,
  kind INTEGER NOT NULL,
  buffer INTEGER NOT NULL);
CREATE INDEX txns_by_buffer ON txns(buffer);
CREATE TABLE receivers(
  handle INTEGER NOT NULL, pos INTEGER NOT NULL,
  vm INTEGER NOT NULL, rights INTEGER NOT NULL, state INTEGER NOT NULL,
  mapped_at INTEGER,
  PRIMARY KEY(handle, pos));
CREATE TABLE audit(
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  time_ns INTEGER NOT NULL,
  op TEXT NOT NULL, action TEXT NOT NULL,
  actor INTEGER NOT NULL, vm INTEGER NOT NULL,
  buffer INTEGER NOT NULL, handle INTEGER NOT NULL,
  first_pfn INTEGER NOT NULL, pages INTEGER NOT NULL,
  rights INTEGER NOT NULL);
)sql";

int64_t Signed(uint64_t v) { return static_cast<int64_t>(v); }
uint64_t Unsigned(int64_t v) { return static_cast<uint64_t>(v); }

std::string ResetHint(const std::string& path) {
  return absl::StrCat(
      "; rmemd will not start from it (start with --reset-state to discard it: every carve-out "
      "page is then scrubbed and every buffer it records is lost), or move ",
      path, " away");
}

bool IsUnavailable(int code) {
  switch (code & 0xff) {
    case SQLITE_FULL:
    case SQLITE_READONLY:
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN:
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_PERM:
      return true;
    default:
      return false;
  }
}

int64_t NowNs() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

}  // namespace

// A prepared statement, reset after every use.
class SqliteStateStore::Statement {
 public:
  Statement(sqlite3_stmt* s) : s_(s) {}
  ~Statement() { sqlite3_finalize(s_); }
  Statement& Int(int i, int64_t v) {
    sqlite3_bind_int64(s_, i, v);
    return *this;
  }
  Statement& Text(int i, const std::string& v) {
    sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Statement& Null(int i) {
    sqlite3_bind_null(s_, i);
    return *this;
  }
  template <typename T>
  Statement& Maybe(int i, const std::optional<T>& v) {
    return v ? Int(i, Signed(v->value())) : Null(i);
  }
  // Runs it to completion; the SQLite result code.
  int Run() {
    int rc;
    while ((rc = sqlite3_step(s_)) == SQLITE_ROW) {
    }
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
  }
  sqlite3_stmt* get() { return s_; }

 private:
  sqlite3_stmt* s_;
};

SqliteStateStore::SqliteStateStore(std::string path, Options options, sqlite3* db, int lock_fd)
    : path_(std::move(path)), options_(options), db_(db), lock_fd_(lock_fd) {}

SqliteStateStore::~SqliteStateStore() {
  // Statements first: sqlite3_close refuses while any is alive.
  put_buffer_.reset();
  drop_buffer_.reset();
  drop_buffer_txn_receivers_.reset();
  drop_buffer_txns_.reset();
  put_txn_.reset();
  drop_receivers_.reset();
  put_receiver_.reset();
  drop_txn_.reset();
  put_ids_.reset();
  add_audit_.reset();
  trim_audit_.reset();
  sqlite3_close(db_);
  if (lock_fd_ >= 0) close(lock_fd_);
}

absl::Status SqliteStateStore::Fail(const char* doing) const {
  const int code = sqlite3_extended_errcode(db_);
  const std::string message =
      absl::StrCat("state database ", path_, ": ", doing, ": ", sqlite3_errmsg(db_));
  return IsUnavailable(code) ? absl::UnavailableError(message) : absl::InternalError(message);
}

absl::Status SqliteStateStore::Exec(const char* sql) {
  if (sqlite3_exec(db_, sql, nullptr, nullptr, nullptr) != SQLITE_OK) return Fail(sql);
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<SqliteStateStore>> SqliteStateStore::Open(const std::string& path,
                                                                         Options options) {
  // One rmemd per database: two brokers over one state would hand the same
  // pages to different VMs.
  const std::string lock_path = path + ".lock";
  const int lock_fd = open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock_fd < 0) {
    return absl::UnavailableError(
        absl::StrCat("state database ", path, ": cannot open ", lock_path, ": ", strerror(errno)));
  }
  if (flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    close(lock_fd);
    return absl::UnavailableError(absl::StrCat(
        "state database ", path, ": ",
        err == EWOULDBLOCK ? "another rmemd is using it" : strerror(err), " (lock ", lock_path,
        ")"));
  }
  if (options.reset) {
    for (const char* suffix : {"", "-wal", "-shm"}) {
      const std::string p = path + suffix;
      if (unlink(p.c_str()) != 0 && errno != ENOENT) {
        const int err = errno;
        close(lock_fd);
        return absl::UnavailableError(absl::StrCat("state database ", path,
                                                   ": cannot remove ", p, ": ", strerror(err)));
      }
    }
  }
  sqlite3* db = nullptr;
  const int rc = sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                                 nullptr);
  auto store = std::unique_ptr<SqliteStateStore>(
      new SqliteStateStore(path, options, db, lock_fd));
  if (rc != SQLITE_OK) return store->Fail("opening");
  sqlite3_extended_result_codes(db, 1);
  if (absl::Status s = store->CheckAndCreateSchema(); !s.ok()) return s;
  if (absl::Status s = store->PrepareStatements(); !s.ok()) return s;
  return store;
}

absl::StatusOr<std::unique_ptr<SqliteStateStore>> SqliteStateStore::OpenReadOnly(
    const std::string& path) {
  if (access(path.c_str(), F_OK) != 0) {
    return absl::NotFoundError(absl::StrCat("state database ", path, ": ", strerror(errno)));
  }
  sqlite3* db = nullptr;
  const int rc = sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
  auto store =
      std::unique_ptr<SqliteStateStore>(new SqliteStateStore(path, Options(), db, -1));
  if (rc != SQLITE_OK) return store->Fail("opening read-only");
  sqlite3_busy_timeout(db, 1000);
  sqlite3_stmt* s = nullptr;
  int32_t app_id = 0, version = 0;
  for (auto [sql, out] : {std::pair{"PRAGMA application_id", &app_id},
                          std::pair{"PRAGMA user_version", &version}}) {
    const bool prepared = sqlite3_prepare_v2(db, sql, -1, &s, nullptr) == SQLITE_OK;
    Statement st(s);
    if (!prepared || sqlite3_step(s) != SQLITE_ROW) {
      const int code = sqlite3_errcode(db) & 0xff;
      if (code == SQLITE_NOTADB || code == SQLITE_CORRUPT) {
        return absl::FailedPreconditionError(absl::StrCat(
            "state database ", path, ": not an SQLite database (", sqlite3_errmsg(db), ")"));
      }
      return store->Fail(sql);
    }
    *out = sqlite3_column_int(s, 0);
  }
  if (app_id != kApplicationId || version < 1 || version > kSchemaVersion) {
    return absl::FailedPreconditionError(absl::StrCat(
        "state database ", path, ": not an rmem state database of schema ", kSchemaVersion,
        " (application_id ", app_id, ", user_version ", version, ")"));
  }
  return store;
}

absl::Status SqliteStateStore::CheckAndCreateSchema() {
  // Reading the header is the first access: a file that is not SQLite
  // fails here (SQLITE_NOTADB).
  auto query_int = [&](const char* sql) -> absl::StatusOr<int64_t> {
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(db_, sql, -1, &s, nullptr) != SQLITE_OK) {
      if ((sqlite3_errcode(db_) & 0xff) == SQLITE_NOTADB ||
          (sqlite3_errcode(db_) & 0xff) == SQLITE_CORRUPT) {
        return absl::FailedPreconditionError(absl::StrCat(
            "state database ", path_, ": not an SQLite database (", sqlite3_errmsg(db_), ")",
            ResetHint(path_)));
      }
      return Fail(sql);
    }
    Statement st(s);
    if (sqlite3_step(s) != SQLITE_ROW) return Fail(sql);
    return sqlite3_column_int64(s, 0);
  };
  absl::StatusOr<int64_t> tables = query_int("SELECT count(*) FROM sqlite_master");
  if (!tables.ok()) return tables.status();
  absl::StatusOr<int64_t> app_id = query_int("PRAGMA application_id");
  if (!app_id.ok()) return app_id.status();
  absl::StatusOr<int64_t> version = query_int("PRAGMA user_version");
  if (!version.ok()) return version.status();

  if (*tables == 0 && *app_id == 0 && *version == 0) {
    // New (or empty) file: create the schema in one transaction, so that a
    // crash leaves either nothing or all of it.
    if (absl::Status s = Exec("PRAGMA journal_mode=WAL"); !s.ok()) return s;
    if (absl::Status s = Exec("BEGIN IMMEDIATE"); !s.ok()) return s;
    const std::string create = absl::StrCat(kSchema, "PRAGMA application_id=", kApplicationId,
                                            ";PRAGMA user_version=", kSchemaVersion, ";");
    if (sqlite3_exec(db_, create.c_str(), nullptr, nullptr, nullptr) != SQLITE_OK) {
      absl::Status s = Fail("creating the schema");
      sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
      return s;
    }
    if (absl::Status s = Exec("COMMIT"); !s.ok()) return s;
  } else {
    if (*app_id != kApplicationId) {
      return absl::FailedPreconditionError(
          absl::StrCat("state database ", path_, ": not an rmem state database (application_id ",
                       Hex(Unsigned(*app_id)), ", want ", Hex(kApplicationId), ")",
                       ResetHint(path_)));
    }
    if (*version > kSchemaVersion) {
      return absl::FailedPreconditionError(absl::StrCat(
          "state database ", path_, ": written by a newer rmemd (schema version ", *version,
          "; this rmemd knows versions up to ", kSchemaVersion, ")", ResetHint(path_)));
    }
    if (*version < 1) {
      return absl::FailedPreconditionError(absl::StrCat(
          "state database ", path_, ": schema version ", *version, " is not one rmemd wrote",
          ResetHint(path_)));
    }
    absl::StatusOr<int64_t> ours = query_int(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND "
        "name IN ('ids', 'buffers', 'txns', 'receivers', 'audit')");
    if (!ours.ok()) return ours.status();
    if (*ours != 5) {
      return absl::FailedPreconditionError(absl::StrCat(
          "state database ", path_, ": tables are missing (", *ours, " of 5)", ResetHint(path_)));
    }
    if (absl::Status s = Exec("PRAGMA journal_mode=WAL"); !s.ok()) return s;
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(db_, "PRAGMA quick_check", -1, &s, nullptr) != SQLITE_OK) {
      return absl::FailedPreconditionError(absl::StrCat("state database ", path_,
                                                        ": integrity check cannot run: ",
                                                        sqlite3_errmsg(db_), ResetHint(path_)));
    }
    Statement st(s);
    std::string problems;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
      const char* text = reinterpret_cast<const char*>(sqlite3_column_text(s, 0));
      const std::string line = text != nullptr ? text : "";
      if (line != "ok") absl::StrAppend(&problems, problems.empty() ? "" : "; ", line);
    }
    if (rc != SQLITE_DONE) {
      problems = absl::StrCat(problems, problems.empty() ? "" : "; ", sqlite3_errmsg(db_));
    }
    if (!problems.empty()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "state database ", path_, ": integrity check failed: ", problems, ResetHint(path_)));
    }
  }
  return Exec("PRAGMA synchronous=NORMAL");
}

absl::Status SqliteStateStore::PrepareStatements() {
  auto prepare = [&](std::unique_ptr<Statement>& out, const char* sql) -> absl::Status {
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, nullptr) != SQLITE_OK) {
      return Fail(sql);
    }
    out = std::make_unique<Statement>(s);
    return absl::OkStatus();
  };
  const std::pair<std::unique_ptr<Statement>*, const char*> statements[] = {
      {&put_buffer_,
       "INSERT OR REPLACE INTO buffers(id, owner, heap, carveout, first_pfn, pages, rights, "
       "state, txn, mapped_at) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"},
      {&drop_buffer_, "DELETE FROM buffers WHERE id = ?1"},
      {&drop_buffer_txn_receivers_,
       "DELETE FROM receivers WHERE handle IN (SELECT handle FROM txns WHERE buffer = ?1)"},
      {&drop_buffer_txns_, "DELETE FROM txns WHERE buffer = ?1"},
      {&put_txn_, "INSERT OR REPLACE INTO txns(handle, kind, buffer) VALUES(?1, ?2, ?3)"},
      {&drop_receivers_, "DELETE FROM receivers WHERE handle = ?1"},
      {&put_receiver_,
       "INSERT INTO receivers(handle, pos, vm, rights, state, mapped_at) "
       "VALUES(?1, ?2, ?3, ?4, ?5, ?6)"},
      {&drop_txn_, "DELETE FROM txns WHERE handle = ?1"},
      {&put_ids_, "INSERT OR REPLACE INTO ids(name, k0, k1, next) VALUES(?1, ?2, ?3, ?4)"},
      {&add_audit_,
       "INSERT INTO audit(time_ns, op, action, actor, vm, buffer, handle, first_pfn, pages, "
       "rights) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"},
      {&trim_audit_, "DELETE FROM audit WHERE seq <= ?1"},
  };
  for (auto& [out, sql] : statements) {
    if (absl::Status s = prepare(*out, sql); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status SqliteStateStore::LimitPagesForTest(uint64_t pages) {
  return Exec(absl::StrCat("PRAGMA max_page_count=", pages).c_str());
}

// ---- Writing ----------------------------------------------------------------

absl::Status SqliteStateStore::PutBuffer(const StoredBuffer& sb) {
  const Buffer& b = sb.buffer;
  if (put_buffer_->Int(1, Signed(b.id.value()))
          .Int(2, b.owner.value())
          .Text(3, sb.heap)
          .Text(4, sb.carveout)
          .Int(5, Signed(b.pages.first().value()))
          .Int(6, Signed(b.pages.count().value()))
          .Int(7, b.owner_rights.bits())
          .Int(8, static_cast<int>(b.state))
          .Maybe(9, b.txn)
          .Maybe(10, b.mapped_at)
          .Run() != SQLITE_OK) {
    return Fail("recording a buffer");
  }
  return absl::OkStatus();
}

absl::Status SqliteStateStore::DropBuffer(BufferId id) {
  for (Statement* s : {drop_buffer_txn_receivers_.get(), drop_buffer_txns_.get(),
                       drop_buffer_.get()}) {
    if (s->Int(1, Signed(id.value())).Run() != SQLITE_OK) return Fail("removing a buffer");
  }
  return absl::OkStatus();
}

absl::Status SqliteStateStore::PutTxn(const Transaction& t) {
  if (put_txn_->Int(1, Signed(t.handle.value()))
          .Int(2, static_cast<int>(t.kind))
          .Int(3, Signed(t.buffer.value()))
          .Run() != SQLITE_OK ||
      drop_receivers_->Int(1, Signed(t.handle.value())).Run() != SQLITE_OK) {
    return Fail("recording a transaction");
  }
  for (size_t i = 0; i < t.receivers.size(); ++i) {
    const Receiver& r = t.receivers[i];
    if (put_receiver_->Int(1, Signed(t.handle.value()))
            .Int(2, static_cast<int64_t>(i))
            .Int(3, r.vm.value())
            .Int(4, r.rights.bits())
            .Int(5, static_cast<int>(r.state))
            .Maybe(6, r.mapped_at)
            .Run() != SQLITE_OK) {
      return Fail("recording a receiver");
    }
  }
  return absl::OkStatus();
}

absl::Status SqliteStateStore::DropTxn(Handle h) {
  if (drop_receivers_->Int(1, Signed(h.value())).Run() != SQLITE_OK ||
      drop_txn_->Int(1, Signed(h.value())).Run() != SQLITE_OK) {
    return Fail("removing a transaction");
  }
  return absl::OkStatus();
}

absl::Status SqliteStateStore::PutIds(const char* name, const StoredIds& ids) {
  if (put_ids_->Text(1, name)
          .Int(2, Signed(ids.key.k0))
          .Int(3, Signed(ids.key.k1))
          .Int(4, Signed(ids.next_counter))
          .Run() != SQLITE_OK) {
    return Fail("recording an id sequence");
  }
  return absl::OkStatus();
}

absl::Status SqliteStateStore::AddAudit(const AuditEntry& e, int64_t now_ns) {
  if (add_audit_->Int(1, now_ns)
          .Text(2, e.op)
          .Text(3, AuditActionName(e.action))
          .Int(4, e.actor.value())
          .Int(5, e.vm.value())
          .Int(6, Signed(e.buffer.value()))
          .Int(7, Signed(e.handle.value()))
          .Int(8, Signed(e.pages.first().value()))
          .Int(9, Signed(e.pages.count().value()))
          .Int(10, e.rights.bits())
          .Run() != SQLITE_OK) {
    return Fail("recording an audit entry");
  }
  const uint64_t seq = Unsigned(sqlite3_last_insert_rowid(db_));
  if (options_.audit_limit != 0 && seq % 4096 == 0 && seq > options_.audit_limit) {
    if (trim_audit_->Int(1, Signed(seq - options_.audit_limit)).Run() != SQLITE_OK) {
      return Fail("trimming the audit log");
    }
  }
  return absl::OkStatus();
}

absl::Status SqliteStateStore::Apply(const StateDelta& delta, const StoredState* replace_first) {
  if (replace_first != nullptr) {
    if (absl::Status s = Exec("DELETE FROM receivers; DELETE FROM txns; DELETE FROM buffers;");
        !s.ok()) {
      return s;
    }
    for (const StoredBuffer& b : replace_first->buffers) {
      if (absl::Status s = PutBuffer(b); !s.ok()) return s;
    }
    for (const Transaction& t : replace_first->txns) {
      if (absl::Status s = PutTxn(t); !s.ok()) return s;
    }
    if (absl::Status s = PutIds("buffer", replace_first->buffer_ids); !s.ok()) return s;
    if (absl::Status s = PutIds("handle", replace_first->handle_ids); !s.ok()) return s;
  }
  for (BufferId id : delta.drop_buffers) {
    if (absl::Status s = DropBuffer(id); !s.ok()) return s;
  }
  for (Handle h : delta.drop_txns) {
    if (absl::Status s = DropTxn(h); !s.ok()) return s;
  }
  for (const StoredBuffer& b : delta.put_buffers) {
    if (absl::Status s = PutBuffer(b); !s.ok()) return s;
  }
  for (const Transaction& t : delta.put_txns) {
    if (absl::Status s = PutTxn(t); !s.ok()) return s;
  }
  if (delta.buffer_ids) {
    if (absl::Status s = PutIds("buffer", *delta.buffer_ids); !s.ok()) return s;
  }
  if (delta.handle_ids) {
    if (absl::Status s = PutIds("handle", *delta.handle_ids); !s.ok()) return s;
  }
  const int64_t now = NowNs();
  for (const AuditEntry& e : delta.audit) {
    if (absl::Status s = AddAudit(e, now); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status SqliteStateStore::Commit(const StateDelta& delta, const StoredState* replace_first) {
  if (delta.empty() && replace_first == nullptr) return absl::OkStatus();
  if (absl::Status s = Exec("BEGIN IMMEDIATE"); !s.ok()) return s;
  absl::Status s = Apply(delta, replace_first);
  if (s.ok()) s = Exec("COMMIT");
  if (!s.ok() && !sqlite3_get_autocommit(db_)) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }
  return s;
}

// ---- Reading ----------------------------------------------------------------

absl::StatusOr<std::optional<StoredState>> SqliteStateStore::Load() {
  auto corrupt = [&](const std::string& what) {
    return absl::DataLossError(
        absl::StrCat("state database ", path_, ": ", what, ResetHint(path_)));
  };
  // `types`, one letter per column: i integer, o integer or NULL, t text.
  // The tables are not STRICT: a value of another type written behind our
  // back would otherwise read as 0.
  // `what` names a row by its first column ("buffer 0x7").
  auto query = [&](const char* sql, const char* what, const char* types,
                   auto&& row) -> absl::Status {
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(db_, sql, -1, &s, nullptr) != SQLITE_OK) return Fail(sql);
    Statement st(s);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
      for (int col = 0; types[col] != '\0'; ++col) {
        const int type = sqlite3_column_type(s, col);
        const bool fits = types[col] == 't'   ? type == SQLITE_TEXT
                          : types[col] == 'o' ? type == SQLITE_INTEGER || type == SQLITE_NULL
                                              : type == SQLITE_INTEGER;
        if (!fits) {
          const int key_type = sqlite3_column_type(s, 0);
          const unsigned char* key_text = sqlite3_column_text(s, 0);
          const std::string key =
              key_type == SQLITE_INTEGER ? Hex(Unsigned(sqlite3_column_int64(s, 0)))
              : key_text != nullptr      ? absl::StrCat("'", reinterpret_cast<const char*>(key_text), "'")
                                         : std::string("?");
          return corrupt(absl::StrCat(what, " ", key, ": ", sqlite3_column_name(s, col),
                                      " holds a value of the wrong type"));
        }
      }
      if (absl::Status r = row(s); !r.ok()) return r;
    }
    if (rc != SQLITE_DONE) return Fail(sql);
    return absl::OkStatus();
  };
  auto i64 = [](sqlite3_stmt* s, int col) { return sqlite3_column_int64(s, col); };
  auto opt = [](sqlite3_stmt* s, int col) -> std::optional<uint64_t> {
    if (sqlite3_column_type(s, col) == SQLITE_NULL) return std::nullopt;
    return Unsigned(sqlite3_column_int64(s, col));
  };
  auto text = [](sqlite3_stmt* s, int col) {
    const unsigned char* t = sqlite3_column_text(s, col);
    return t != nullptr ? std::string(reinterpret_cast<const char*>(t)) : std::string();
  };
  auto range = [](int64_t first, int64_t count) {
    return PageRange::FromPages(Pfn(Unsigned(first)), PageCount(Unsigned(count)));
  };

  StoredState state;
  std::optional<StoredIds> buffer_ids, handle_ids;
  absl::Status s = query("SELECT name, k0, k1, next FROM ids", "id sequence", "tiii", [&](sqlite3_stmt* st) {
    const std::string name = text(st, 0);
    const StoredIds ids{IdKey{Unsigned(i64(st, 1)), Unsigned(i64(st, 2))}, Unsigned(i64(st, 3))};
    if (name == "buffer") {
      buffer_ids = ids;
    } else if (name == "handle") {
      handle_ids = ids;
    } else {
      return corrupt(absl::StrCat("unknown id sequence '", name, "'"));
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;

  s = query(
      "SELECT id, owner, heap, carveout, first_pfn, pages, rights, state, txn, mapped_at "
      "FROM buffers",
      "buffer", "iittiiiioo", [&](sqlite3_stmt* st) {
        StoredBuffer sb;
        Buffer& b = sb.buffer;
        b.id = BufferId(Unsigned(i64(st, 0)));
        const std::string name = BufferName(b.id);
        const int64_t owner = i64(st, 1);
        if (owner < 0 || owner > UINT32_MAX) return corrupt(absl::StrCat(name, ": bad owner"));
        b.owner = VmId(static_cast<uint32_t>(owner));
        sb.heap = text(st, 2);
        sb.carveout = text(st, 3);
        const std::optional<PageRange> pages = range(i64(st, 4), i64(st, 5));
        if (!pages || pages->count().value() == 0) {
          return corrupt(absl::StrCat(name, ": bad page range"));
        }
        b.pages = *pages;
        const std::optional<Rights> rights = Rights::FromBits(Unsigned(i64(st, 6)));
        if (!rights) return corrupt(absl::StrCat(name, ": bad rights"));
        b.owner_rights = *rights;
        const int64_t state_value = i64(st, 7);
        if (state_value < 0 || state_value >= static_cast<int>(BufferState::kGone)) {
          return corrupt(absl::StrCat(name, ": bad state ", state_value));
        }
        b.state = static_cast<BufferState>(state_value);
        if (std::optional<uint64_t> h = opt(st, 8)) b.txn = Handle(*h);
        if (std::optional<uint64_t> a = opt(st, 9)) b.mapped_at = GuestAddr(*a);
        state.buffers.push_back(std::move(sb));
        return absl::OkStatus();
      });
  if (!s.ok()) return s;

  s = query("SELECT handle, kind, buffer FROM txns", "handle", "iii", [&](sqlite3_stmt* st) {
    Transaction t;
    t.handle = Handle(Unsigned(i64(st, 0)));
    const int64_t kind = i64(st, 1);
    if (kind < 0 || kind > static_cast<int>(TxnKind::kDonate)) {
      return corrupt(absl::StrCat(HandleName(t.handle), ": bad kind ", kind));
    }
    t.kind = static_cast<TxnKind>(kind);
    t.buffer = BufferId(Unsigned(i64(st, 2)));
    state.txns.push_back(std::move(t));
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  std::sort(state.txns.begin(), state.txns.end(),
            [](const Transaction& a, const Transaction& b) { return a.handle < b.handle; });

  s = query(
      "SELECT handle, vm, rights, state, mapped_at FROM receivers ORDER BY handle, pos",
      "a receiver of handle", "iiiio", [&](sqlite3_stmt* st) {
        const Handle h(Unsigned(i64(st, 0)));
        auto it = std::lower_bound(
            state.txns.begin(), state.txns.end(), h,
            [](const Transaction& t, Handle key) { return t.handle < key; });
        if (it == state.txns.end() || it->handle != h) {
          return corrupt(absl::StrCat("a receiver of ", HandleName(h), " without its transaction"));
        }
        Receiver r;
        const int64_t vm = i64(st, 1);
        if (vm < 0 || vm > UINT32_MAX) return corrupt(absl::StrCat(HandleName(h), ": bad vm"));
        r.vm = VmId(static_cast<uint32_t>(vm));
        const std::optional<Rights> rights = Rights::FromBits(Unsigned(i64(st, 2)));
        const int64_t rstate = i64(st, 3);
        if (!rights || rstate < 0 || rstate > static_cast<int>(ReceiverState::kRetrieved)) {
          return corrupt(absl::StrCat(HandleName(h), ": bad receiver of ", VmName(r.vm)));
        }
        r.rights = *rights;
        r.state = static_cast<ReceiverState>(rstate);
        if (std::optional<uint64_t> a = opt(st, 4)) r.mapped_at = GuestAddr(*a);
        it->receivers.push_back(r);
        return absl::OkStatus();
      });
  if (!s.ok()) return s;

  if (!buffer_ids && !handle_ids && state.buffers.empty() && state.txns.empty()) {
    return std::optional<StoredState>();
  }
  if (!buffer_ids || !handle_ids) return corrupt("the id sequences are missing");
  state.buffer_ids = *buffer_ids;
  state.handle_ids = *handle_ids;
  std::sort(state.buffers.begin(), state.buffers.end(),
            [](const StoredBuffer& a, const StoredBuffer& b) {
              return a.buffer.id < b.buffer.id;
            });
  return std::optional<StoredState>(std::move(state));
}

absl::StatusOr<std::vector<AuditEntry>> SqliteStateStore::ReadAudit(uint64_t after_seq,
                                                                    size_t max) {
  sqlite3_stmt* s = nullptr;
  const char* sql =
      "SELECT seq, time_ns, op, action, actor, vm, buffer, handle, first_pfn, pages, rights "
      "FROM audit WHERE seq > ?1 ORDER BY seq LIMIT ?2";
  if (sqlite3_prepare_v2(db_, sql, -1, &s, nullptr) != SQLITE_OK) return Fail("reading the audit");
  Statement st(s);
  st.Int(1, Signed(after_seq)).Int(2, static_cast<int64_t>(std::min<size_t>(max, INT64_MAX)));
  std::vector<AuditEntry> out;
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    AuditEntry e;
    e.seq = Unsigned(sqlite3_column_int64(s, 0));
    e.time_ns = sqlite3_column_int64(s, 1);
    const unsigned char* op = sqlite3_column_text(s, 2);
    e.op = op != nullptr ? reinterpret_cast<const char*>(op) : "";
    const unsigned char* action = sqlite3_column_text(s, 3);
    const std::string a = action != nullptr ? reinterpret_cast<const char*>(action) : "";
    e.action = a == "revoke" ? AuditAction::kRevoke
               : a == "offer" ? AuditAction::kOffer
                              : AuditAction::kGrant;
    e.actor = VmId(static_cast<uint32_t>(sqlite3_column_int64(s, 4)));
    e.vm = VmId(static_cast<uint32_t>(sqlite3_column_int64(s, 5)));
    e.buffer = BufferId(Unsigned(sqlite3_column_int64(s, 6)));
    e.handle = Handle(Unsigned(sqlite3_column_int64(s, 7)));
    e.pages = PageRange::FromPages(Pfn(Unsigned(sqlite3_column_int64(s, 8))),
                                   PageCount(Unsigned(sqlite3_column_int64(s, 9))))
                  .value_or(PageRange());
    e.rights = Rights::Of(static_cast<uint8_t>(sqlite3_column_int64(s, 10)));
    out.push_back(std::move(e));
  }
  if (rc != SQLITE_DONE) return Fail("reading the audit");
  return out;
}

}  // namespace rmem
