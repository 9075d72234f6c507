//! The history file: every request of a chaos run and its outcome, one JSON object per line
//! (JSON Lines), plus the faults the driver injected and what was read after the run.
//!
//! Order of records: one `meta` first, then `op` and `fault` records as they complete (so not
//! sorted by invocation), then at most one `read_model`, then one `end`. A file without its `end`
//! record is incomplete (the run died or the file was truncated) and is refused by [`read`].
//! Times are microseconds since the Unix epoch (wall clock, the same clock the server stamps
//! `expires_at` with: both run on one machine).

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Format version written in `meta.version`; other versions are refused.
pub const HISTORY_VERSION: u32 = 1;

/// Longest history line accepted when reading, in bytes (a record is well under 8 KiB; a
/// read-model record lists every order and may be large).
pub const MAX_LINE_BYTES: usize = 256 << 20;

/// Microseconds since the Unix epoch, now.
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// One line of the history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Entry {
    /// What was run against what (always the first line).
    Meta(Meta),
    /// One request and its outcome.
    Op(Op),
    /// A fault injected (or cleared) by the driver.
    Fault(FaultEvent),
    /// The Postgres read model as read after the run (Postgres backend only).
    ReadModel(ReadModelSnapshot),
    /// The run finished and every record before this one was written (always the last line).
    End(End),
}

/// The run's setup.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    /// [`HISTORY_VERSION`].
    pub version: u32,
    /// Seed of the workload and fault schedule.
    pub seed: u64,
    /// `embedded`, `postgres` or `external` (a server the workload did not start).
    pub backend: String,
    /// Base URL of the server.
    pub target: String,
    /// Engine shards of the server, when the driver started it.
    #[serde(default)]
    pub shards: Option<u32>,
    /// Names of the storefront credentials used (index = `caller` of a reserve); never tokens.
    pub callers: Vec<String>,
    /// The SKUs the workload created.
    pub skus: Vec<SkuSetup>,
    /// Fault kinds the driver may inject in this run.
    #[serde(default)]
    pub faults: Vec<String>,
    /// Remarks, e.g. why a fault kind was not possible on this machine.
    #[serde(default)]
    pub notes: Vec<String>,
    /// When the run started.
    pub started_us: u64,
}

/// One SKU as created (`PUT /v1/skus/{sku}` answered 201).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkuSetup {
    /// SKU id.
    pub sku: String,
    /// Unit price.
    pub price_cents: u64,
    /// Initial total stock.
    pub stock: u64,
    /// Most units one buyer may hold and buy together.
    #[serde(default)]
    pub per_buyer_limit: Option<u32>,
    /// Reservation TTL.
    pub ttl_s: u64,
    /// Longest hold from creation, extensions included (the server's default when `None`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_hold_s: Option<u64>,
    /// Most extensions of one reservation (the server's default when `None`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_extensions: Option<u32>,
}

/// Whether an op belongs to the load (faults may happen) or to the read-back after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Under load and faults.
    #[default]
    Load,
    /// After the load, with the server healthy: resolving unknown outcomes, reading state.
    Final,
}

/// One request, when it was sent and answered, and what came back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Op {
    /// Unique number of the op in this history.
    pub op: u64,
    /// The client (worker) that sent it; one request at a time per connection.
    pub proc: u32,
    /// Just before the request was handed to the connection.
    pub invoke_us: u64,
    /// When the answer (or the failure) was in.
    pub complete_us: u64,
    /// Load or read-back.
    #[serde(default)]
    pub phase: Phase,
    /// What was asked.
    pub call: Call,
    /// What happened.
    pub outcome: Outcome,
}

/// A reservation line as requested or answered.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Line {
    /// SKU id.
    pub sku: String,
    /// Units.
    pub qty: u32,
}

/// The request of an op.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "call", rename_all = "snake_case")]
pub enum Call {
    /// `POST /v1/reservations`.
    Reserve {
        /// Index into `meta.callers` (the storefront credential used).
        caller: u32,
        /// `Idempotency-Key`, if sent.
        #[serde(default)]
        key: Option<String>,
        /// Buyer in the body.
        buyer: String,
        /// Lines in the body, in order.
        lines: Vec<Line>,
    },
    /// `GET /v1/reservations/{id}`.
    GetReservation {
        /// Reservation id.
        id: String,
    },
    /// `POST /v1/reservations/{id}/confirm`.
    Confirm {
        /// Reservation id.
        id: String,
        /// Payment reference in the body.
        payment_ref: String,
    },
    /// `POST /v1/reservations/{id}/cancel`.
    Cancel {
        /// Reservation id.
        id: String,
    },
    /// `POST /v1/skus/{sku}/restock` (admin).
    Restock {
        /// SKU id.
        sku: String,
        /// Units added.
        qty: u64,
    },
    /// `GET /v1/skus/{sku}`.
    GetSku {
        /// SKU id.
        sku: String,
    },
    /// `POST /v1/reservations/{id}/extend`.
    Extend {
        /// Reservation id.
        id: String,
        /// The hold asked for, in seconds from now.
        ttl_s: u64,
    },
    /// `GET /v1/reservations?buyer=…` (one page).
    ListReservations {
        /// Whose reservations.
        buyer: String,
        /// The `status` filter, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        status: Option<String>,
        /// Page size.
        limit: u32,
        /// The previous page's `next_cursor` (none for the first page).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cursor: Option<String>,
    },
    /// `GET /v1/orders?buyer=…` (one page).
    ListOrders {
        /// Whose orders.
        buyer: String,
        /// Page size.
        limit: u32,
        /// The previous page's `next_cursor` (none for the first page).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cursor: Option<String>,
    },
}

impl Call {
    /// The reservation this call is about, if any.
    pub fn reservation_id(&self) -> Option<&str> {
        match self {
            Call::GetReservation { id }
            | Call::Confirm { id, .. }
            | Call::Cancel { id }
            | Call::Extend { id, .. } => Some(id),
            _ => None,
        }
    }

    /// Whether the call may change state on the server (and needs the log).
    pub fn is_write(&self) -> bool {
        matches!(
            self,
            Call::Reserve { .. }
                | Call::Confirm { .. }
                | Call::Cancel { .. }
                | Call::Restock { .. }
                | Call::Extend { .. }
        )
    }

    /// A short name (`reserve`, `get_reservation`, …) for summaries.
    pub fn name(&self) -> &'static str {
        match self {
            Call::Reserve { .. } => "reserve",
            Call::GetReservation { .. } => "get_reservation",
            Call::Confirm { .. } => "confirm",
            Call::Cancel { .. } => "cancel",
            Call::Restock { .. } => "restock",
            Call::GetSku { .. } => "get_sku",
            Call::Extend { .. } => "extend",
            Call::ListReservations { .. } => "list_reservations",
            Call::ListOrders { .. } => "list_orders",
        }
    }
}

/// What came back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Outcome {
    /// A complete HTTP answer.
    Http(Box<HttpAnswer>),
    /// No answer, but the request may have reached the server and taken effect: `timeout`
    /// (the client gave up), `io` (the connection broke mid-exchange) or `reset` (the client
    /// dropped the connection on purpose right after sending).
    Unknown {
        /// `timeout`, `io` or `reset`.
        reason: String,
    },
    /// The request was never sent (connection refused, connect timeout): no effect.
    Refused {
        /// Why.
        reason: String,
    },
}

/// The parts of an HTTP answer the checker needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HttpAnswer {
    /// Status code.
    pub status: u16,
    /// Problem type suffix (`sold-out`, `unavailable`, …) of an error answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// `Retry-After` in seconds, if present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_s: Option<u64>,
    /// The reservation view of a reservation answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reservation: Option<ReservationSeen>,
    /// The counts of a SKU answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sku: Option<SkuSeen>,
    /// The reservations of a list page (`GET /v1/reservations?buyer=`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<Vec<ReservationSeen>>,
    /// The orders of a list page (`GET /v1/orders?buyer=`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orders: Option<Vec<OrderSeen>>,
    /// A list page's `next_cursor` (`None` on the last page).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
    /// The `limit_name` of a 422 naming a hold bound (`max_hold_s`, `max_extensions`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_name: Option<String>,
    /// The start of an unexpected body (problem `detail`, or raw text), for the reader.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl HttpAnswer {
    /// True for this status and problem type suffix.
    pub fn is(&self, status: u16, problem: &str) -> bool {
        self.status == status && self.problem.as_deref() == Some(problem)
    }
}

/// A reservation view as answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReservationSeen {
    /// Reservation id.
    pub id: String,
    /// `held`, `confirmed`, `released` or `expired`.
    pub status: String,
    /// Buyer.
    pub buyer: String,
    /// Lines (SKU and qty), in the order answered.
    pub lines: Vec<Line>,
    /// `expires_at` in Unix milliseconds.
    pub expires_at_ms: u64,
    /// Order id, once confirmed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    /// `cancelled`, `expired` or `aborted`, once released.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_reason: Option<String>,
}

/// An order as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderSeen {
    /// Order id.
    pub id: String,
    /// The reservation it came from.
    pub reservation_id: String,
    /// Buyer.
    pub buyer: String,
    /// Lines (SKU and qty), in the order answered.
    pub lines: Vec<Line>,
}

impl HttpAnswer {
    /// The view of reservation `id` this answer shows: its own reservation, or a list item.
    pub fn shows(&self, id: &str) -> Option<&ReservationSeen> {
        self.reservation
            .iter()
            .chain(self.items.iter().flatten())
            .find(|r| r.id == id)
    }
}

/// A SKU's counts as answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkuSeen {
    /// Total stock.
    pub total: i64,
    /// Units neither held nor sold.
    pub available: i64,
    /// Units held.
    pub reserved: i64,
    /// Units sold.
    pub sold: i64,
}

/// A fault (or its end) and when it happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultEvent {
    /// When the action was done (for `pg_stop`: once Postgres is down; for `pg_ready`: once
    /// it accepts connections again).
    pub at_us: u64,
    /// What happened.
    pub fault: FaultKind,
    /// Free text (pause length, the server's last words after a failed restart, …).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// The faults and milestones the driver records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// The load started.
    LoadStart,
    /// The server got SIGKILL.
    Kill,
    /// The restarted server listens again.
    Restart,
    /// The server could not be restarted (the detail says why).
    RestartFailed,
    /// The server got SIGSTOP.
    Pause,
    /// The server got SIGCONT.
    Resume,
    /// Postgres was stopped (immediate mode) and is down.
    PgStop,
    /// Postgres is being started again (`pg_ctl start` invoked).
    PgStart,
    /// Postgres accepts connections again.
    PgReady,
    /// The embedded log's filesystem was filled.
    DiskFull,
    /// The filler was removed.
    DiskFreed,
    /// The load stopped; the read-back follows.
    LoadEnd,
}

impl FaultKind {
    /// The snake_case name used in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::LoadStart => "load_start",
            FaultKind::Kill => "kill",
            FaultKind::Restart => "restart",
            FaultKind::RestartFailed => "restart_failed",
            FaultKind::Pause => "pause",
            FaultKind::Resume => "resume",
            FaultKind::PgStop => "pg_stop",
            FaultKind::PgStart => "pg_start",
            FaultKind::PgReady => "pg_ready",
            FaultKind::DiskFull => "disk_full",
            FaultKind::DiskFreed => "disk_freed",
            FaultKind::LoadEnd => "load_end",
        }
    }
}

/// The Postgres read model after the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadModelSnapshot {
    /// When it was read.
    pub at_us: u64,
    /// Whether the read model had applied the whole log when it was read.
    pub caught_up: bool,
    /// `orders` rows.
    pub orders: Vec<OrderRow>,
    /// `order_lines` rows.
    pub order_lines: Vec<OrderLineRow>,
    /// `sku_stock` rows.
    pub sku_stock: Vec<SkuStockRow>,
}

/// One `orders` row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderRow {
    /// Order id.
    pub order_id: String,
    /// Reservation it came from.
    pub reservation_id: String,
    /// Buyer.
    pub buyer: String,
    /// Payment reference.
    pub payment_ref: String,
}

/// One `order_lines` row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLineRow {
    /// Order id.
    pub order_id: String,
    /// SKU.
    pub sku: String,
    /// Units.
    pub qty: u32,
}

/// One `sku_stock` row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkuStockRow {
    /// SKU.
    pub sku: String,
    /// Total stock.
    pub total: i64,
    /// Units held.
    pub reserved: i64,
    /// Units sold.
    pub sold: i64,
}

/// The last record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct End {
    /// When the run finished.
    pub at_us: u64,
    /// Number of `op` records written.
    pub ops: u64,
}

/// Appends records to a history file; shared by every worker (each record is one whole line).
#[derive(Debug)]
pub struct HistoryWriter {
    path: PathBuf,
    out: Mutex<Option<BufWriter<File>>>,
    next_op: AtomicU64,
    ops: AtomicU64,
    failed: Mutex<Option<String>>,
}

impl HistoryWriter {
    /// Creates (truncates) `path`.
    pub fn create(path: &Path) -> std::io::Result<HistoryWriter> {
        let file = File::create(path)?;
        Ok(HistoryWriter {
            path: path.to_path_buf(),
            out: Mutex::new(Some(BufWriter::with_capacity(1 << 16, file))),
            next_op: AtomicU64::new(1),
            ops: AtomicU64::new(0),
            failed: Mutex::new(None),
        })
    }

    /// Where it writes.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A fresh op number.
    pub fn next_op(&self) -> u64 {
        self.next_op.fetch_add(1, Ordering::Relaxed)
    }

    /// `op` records written so far.
    pub fn ops(&self) -> u64 {
        self.ops.load(Ordering::Relaxed)
    }

    /// Appends one record. A write error is remembered and reported by [`Self::finish`]
    /// (the workload goes on; the history is then refused).
    pub fn write(&self, entry: &Entry) {
        let mut line = match serde_json::to_vec(entry) {
            Ok(l) => l,
            Err(e) => {
                self.fail(format!("encoding a record: {e}"));
                return;
            }
        };
        line.push(b'\n');
        let mut guard = match self.out.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let Some(out) = guard.as_mut() else {
            drop(guard);
            self.fail("record written after the end record".into());
            return;
        };
        if let Err(e) = out.write_all(&line) {
            drop(guard);
            self.fail(format!("writing {}: {e}", self.path.display()));
            return;
        }
        if matches!(entry, Entry::Op(_)) {
            self.ops.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Flushes buffered records to the file (e.g. before a fault, so that a crash of this
    /// process loses as little as possible).
    pub fn flush(&self) {
        let mut guard = match self.out.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if let Some(out) = guard.as_mut() {
            if let Err(e) = out.flush() {
                drop(guard);
                self.fail(format!("flushing {}: {e}", self.path.display()));
            }
        }
    }

    fn fail(&self, msg: String) {
        let mut f = match self.failed.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        f.get_or_insert(msg);
    }

    /// Writes the `end` record, flushes and syncs the file. Fails if any write failed.
    pub fn finish(&self) -> anyhow::Result<()> {
        let end = Entry::End(End {
            at_us: now_us(),
            ops: self.ops(),
        });
        self.write(&end);
        let taken = match self.out.lock() {
            Ok(mut g) => g.take(),
            Err(p) => p.into_inner().take(),
        };
        if let Some(out) = taken {
            match out.into_inner() {
                Ok(file) => {
                    if let Err(e) = file.sync_all() {
                        self.fail(format!("syncing {}: {e}", self.path.display()));
                    }
                }
                Err(e) => self.fail(format!("flushing {}: {}", self.path.display(), e.error())),
            }
        }
        let failed = match self.failed.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        };
        match failed {
            Some(msg) => anyhow::bail!("the history is incomplete: {msg}"),
            None => Ok(()),
        }
    }
}

/// Why a history file cannot be read. Errors about the content name the line (1-based).
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// The file could not be opened or read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// A line is not a valid record, or records are out of place.
    #[error("{path}:{line}: {msg}")]
    Line {
        /// The file.
        path: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        msg: String,
    },
}

/// Where a record sits in the file (for excerpts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    /// 1-based line number.
    pub line: usize,
    /// Byte offset of the line's start.
    pub offset: u64,
}

/// A history read back: its records in file order, each with its position.
#[derive(Debug, Clone)]
pub struct History {
    /// The file it came from.
    pub path: PathBuf,
    /// The `meta` record.
    pub meta: Meta,
    /// `op` records.
    pub ops: Vec<(Pos, Op)>,
    /// `fault` records.
    pub faults: Vec<(Pos, FaultEvent)>,
    /// The `read_model` record, if any.
    pub read_model: Option<(Pos, ReadModelSnapshot)>,
    /// The `end` record.
    pub end: (Pos, End),
}

/// Reads and validates a history file: every line a record, `meta` first, `end` last.
pub fn read(path: &Path) -> Result<History, HistoryError> {
    let shown = path.display().to_string();
    let io = |source| HistoryError::Io {
        path: shown.clone(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    let mut reader = BufReader::new(file);
    let line_err = |line: usize, msg: String| HistoryError::Line {
        path: shown.clone(),
        line,
        msg,
    };
    let mut buf = Vec::new();
    let mut offset = 0u64;
    let mut line_no = 0usize;
    let mut meta: Option<Meta> = None;
    let mut ops = Vec::new();
    let mut faults = Vec::new();
    let mut read_model = None;
    let mut end: Option<(Pos, End)> = None;
    loop {
        buf.clear();
        let n = (&mut reader)
            .take(MAX_LINE_BYTES as u64 + 1)
            .read_until(b'\n', &mut buf)
            .map_err(io)?;
        if n == 0 {
            break;
        }
        line_no += 1;
        let pos = Pos {
            line: line_no,
            offset,
        };
        offset += n as u64;
        if n > MAX_LINE_BYTES {
            return Err(line_err(
                line_no,
                format!("line longer than {MAX_LINE_BYTES} bytes"),
            ));
        }
        let complete = buf.last() == Some(&b'\n');
        let text = std::str::from_utf8(&buf)
            .map_err(|e| line_err(line_no, format!("not UTF-8: {e}")))?
            .trim_end_matches(['\n', '\r']);
        if text.trim().is_empty() {
            return Err(line_err(line_no, "empty line".into()));
        }
        let entry: Entry = serde_json::from_str(text).map_err(|e| {
            if complete {
                line_err(line_no, format!("not a history record: {e}"))
            } else {
                line_err(
                    line_no,
                    format!("truncated record (the file ends mid-line): {e}"),
                )
            }
        })?;
        if !complete {
            return Err(line_err(
                line_no,
                "truncated record (the file ends without a newline)".into(),
            ));
        }
        if end.is_some() {
            return Err(line_err(line_no, "record after the end record".into()));
        }
        match entry {
            Entry::Meta(m) => {
                if meta.is_some() {
                    return Err(line_err(line_no, "a second meta record".into()));
                }
                if m.version != HISTORY_VERSION {
                    return Err(line_err(
                        line_no,
                        format!(
                            "history version {} (this checker reads version {HISTORY_VERSION})",
                            m.version
                        ),
                    ));
                }
                meta = Some(m);
            }
            _ if meta.is_none() => {
                return Err(line_err(
                    line_no,
                    "the first record must be the meta record".into(),
                ))
            }
            Entry::Op(op) => {
                if op.complete_us < op.invoke_us {
                    return Err(line_err(
                        line_no,
                        format!(
                            "op {} completes ({}) before it is invoked ({})",
                            op.op, op.complete_us, op.invoke_us
                        ),
                    ));
                }
                ops.push((pos, op));
            }
            Entry::Fault(f) => faults.push((pos, f)),
            Entry::ReadModel(rm) => {
                if read_model.is_some() {
                    return Err(line_err(line_no, "a second read_model record".into()));
                }
                read_model = Some((pos, rm));
            }
            Entry::End(e) => end = Some((pos, e)),
        }
    }
    let Some(meta) = meta else {
        return Err(line_err(1, "empty history (no meta record)".into()));
    };
    let Some(end) = end else {
        return Err(line_err(
            line_no + 1,
            "no end record: the run did not finish or the file was truncated".into(),
        ));
    };
    if end.1.ops != ops.len() as u64 {
        return Err(line_err(
            end.0.line,
            format!(
                "the end record counts {} ops but the file holds {}: records are missing",
                end.1.ops,
                ops.len()
            ),
        ));
    }
    Ok(History {
        path: path.to_path_buf(),
        meta,
        ops,
        faults,
        read_model,
        end,
    })
}

/// The raw text of the lines at `positions` (for excerpts), each at most `max_chars` long.
pub fn excerpt_lines(
    path: &Path,
    positions: &[Pos],
    max_chars: usize,
) -> std::io::Result<Vec<(usize, String)>> {
    use std::io::{Seek, SeekFrom};
    let mut file = BufReader::new(File::open(path)?);
    let mut out = Vec::with_capacity(positions.len());
    for p in positions {
        file.seek(SeekFrom::Start(p.offset))?;
        let mut line = String::new();
        (&mut file)
            .take(MAX_LINE_BYTES as u64)
            .read_line(&mut line)?;
        let line = line.trim_end().to_string();
        let shown = if line.chars().count() > max_chars {
            let cut: String = line.chars().take(max_chars).collect();
            format!("{cut}…")
        } else {
            line
        };
        out.push((p.line, shown));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let op = Entry::Op(Op {
            op: 7,
            proc: 2,
            invoke_us: 10,
            complete_us: 20,
            phase: Phase::Load,
            call: Call::Reserve {
                caller: 0,
                key: Some("k".into()),
                buyer: "b".into(),
                lines: vec![Line {
                    sku: "s".into(),
                    qty: 1,
                }],
            },
            outcome: Outcome::Unknown {
                reason: "timeout".into(),
            },
        });
        let text = serde_json::to_string(&op).unwrap();
        assert!(text.contains(r#""type":"op""#), "{text}");
        assert!(text.contains(r#""call":"reserve""#), "{text}");
        let back: Entry = serde_json::from_str(&text).unwrap();
        assert_eq!(back, op);
    }
}
