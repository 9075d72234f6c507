//! `flashsale reservation get|list|extend|cancel`: look at, list, extend or release
//! reservations over the HTTP API (storefront or admin token).

use flashsale_protocol::{BuyerId, ReservationId, SkuId};

use super::client::{ApiClient, ApiError, Line, ListQuery, Page, Reservation, ReservationStatus};
use super::output::{fields, number, opt, table, text};
use super::{render, ApiArgs};

/// Most items one `list` shows when `--limit` is not given.
pub const DEFAULT_LIST_LIMIT: u32 = 50;
/// Most pages one `list` fetches (a page may stop early, even empty, with a cursor).
pub const MAX_LIST_PAGES: usize = 1_000;

/// `flashsale reservation …`.
#[derive(Debug, Clone, clap::Args)]
pub struct ReservationArgs {
    /// Server, token and output flags.
    #[command(flatten)]
    pub api: ApiArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: ReservationCommand,
}

/// The reservation subcommands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum ReservationCommand {
    /// Show a reservation: status (held, confirmed, released, expired), lines, times.
    Get {
        /// Reservation id (`res_…`).
        id: String,
    },
    /// List a buyer's reservations, newest first.
    List(ListArgs),
    /// Move a held reservation's expiry to now + --ttl-s (never earlier), within its SKUs'
    /// max_hold_s and max_extensions.
    Extend {
        /// Reservation id (`res_…`).
        id: String,
        /// Seconds from now (1..=86400).
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..=86_400))]
        ttl_s: u64,
    },
    /// Release a held reservation: its units become available again.
    Cancel {
        /// Reservation id (`res_…`).
        id: String,
    },
}

/// A reservation status, for `--status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StatusArg {
    /// Still holding stock.
    Held,
    /// Became an order.
    Confirmed,
    /// Cancelled.
    Released,
    /// Its hold ran out.
    Expired,
}

impl From<StatusArg> for ReservationStatus {
    fn from(s: StatusArg) -> ReservationStatus {
        match s {
            StatusArg::Held => ReservationStatus::Held,
            StatusArg::Confirmed => ReservationStatus::Confirmed,
            StatusArg::Released => ReservationStatus::Released,
            StatusArg::Expired => ReservationStatus::Expired,
        }
    }
}

/// Flags of `flashsale reservation list` (and, without `--status`/`--sku`, `order list`).
#[derive(Debug, Clone, clap::Args)]
pub struct ListArgs {
    /// The buyer (required with a storefront or admin token; a buyer JWT lists itself).
    #[arg(long)]
    pub buyer: Option<String>,
    /// Only reservations with this status.
    #[arg(long, value_enum)]
    pub status: Option<StatusArg>,
    /// Only reservations with a line of this SKU.
    #[arg(long)]
    pub sku: Option<String>,
    /// Show at most this many [default: 50].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub limit: Option<u32>,
    /// Start after this point (the `next_cursor` of an earlier listing).
    #[arg(long)]
    pub cursor: Option<String>,
}

impl ListArgs {
    /// The first page's query (page size set by [`collect_pages`]).
    pub fn query(&self) -> Result<ListQuery, ApiError> {
        let usage = |e: flashsale_protocol::IdError| ApiError::Usage(e.to_string());
        Ok(ListQuery {
            buyer: self
                .buyer
                .as_deref()
                .map(BuyerId::new)
                .transpose()
                .map_err(usage)?,
            status: self.status.map(Into::into),
            sku: self
                .sku
                .as_deref()
                .map(SkuId::new)
                .transpose()
                .map_err(usage)?,
            limit: None,
            cursor: self.cursor.clone(),
        })
    }
}

/// Follows `next_cursor` from `q` until `want` items or the end (at most [`MAX_LIST_PAGES`]
/// pages); returns the items and the cursor to continue from.
pub async fn collect_pages<T, F, Fut>(
    mut q: ListQuery,
    want: u32,
    fetch: F,
) -> Result<Page<T>, ApiError>
where
    F: Fn(ListQuery) -> Fut,
    Fut: std::future::Future<Output = Result<Page<T>, ApiError>>,
{
    let mut items: Vec<T> = Vec::new();
    for _ in 0..MAX_LIST_PAGES {
        let left = want.saturating_sub(items.len() as u32);
        q.limit = Some(left.min(super::client::MAX_PAGE));
        let page = fetch(q.clone()).await?;
        items.extend(page.items);
        q.cursor = page.next_cursor;
        if q.cursor.is_none() || items.len() as u32 >= want {
            break;
        }
    }
    Ok(Page {
        items,
        next_cursor: q.cursor,
    })
}

/// A reservation id from the command line.
pub fn reservation_id(s: &str) -> Result<ReservationId, ApiError> {
    ReservationId::parse(s.trim()).map_err(|_| {
        ApiError::Usage(format!(
            "{s:?} is not a reservation id (res_ and 16 hex digits)"
        ))
    })
}

/// Lines of a reservation or order as a table.
pub fn lines_table(lines: &[Line]) -> String {
    let rows: Vec<Vec<String>> = lines
        .iter()
        .map(|l| {
            vec![
                l.sku.to_string(),
                l.qty.to_string(),
                l.unit_price_cents.to_string(),
            ]
        })
        .collect();
    table(
        &[text("SKU"), number("QTY"), number("UNIT_PRICE_CENTS")],
        &rows,
    )
}

/// Lines in one cell: `tee×2 mug×1`.
pub fn lines_cell(lines: &[Line]) -> String {
    lines
        .iter()
        .map(|l| format!("{}×{}", l.sku, l.qty))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A reservation view: its fields, then its lines.
pub fn reservation_text(r: &Reservation) -> String {
    let mut out = fields(&[
        ("id", r.id.to_string()),
        ("status", r.status.as_str().to_string()),
        ("buyer", r.buyer.to_string()),
        ("total_cents", r.total_cents.to_string()),
        ("created_at", r.created_at.clone()),
        ("expires_at", r.expires_at.clone()),
        ("extensions", r.extensions.to_string()),
        ("order_id", opt(r.order_id)),
        ("release_reason", opt(r.release_reason.map(|x| x.as_str()))),
    ]);
    out.push('\n');
    out.push_str(&lines_table(&r.lines));
    out
}

/// Reservations as a table, one row each.
pub fn reservations_table(items: &[Reservation]) -> String {
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|r| {
            vec![
                r.id.to_string(),
                r.status.as_str().to_string(),
                r.created_at.clone(),
                r.expires_at.clone(),
                r.total_cents.to_string(),
                opt(r.order_id),
                lines_cell(&r.lines),
            ]
        })
        .collect();
    table(
        &[
            text("ID"),
            text("STATUS"),
            text("CREATED_AT"),
            text("EXPIRES_AT"),
            number("TOTAL_CENTS"),
            text("ORDER"),
            text("LINES"),
        ],
        &rows,
    )
}

/// A listing for people: the table (or `none`), then how to continue.
pub fn listing(empty: &str, table: String, more: Option<String>) -> String {
    let mut out = if table.is_empty() {
        format!("{empty}\n")
    } else {
        table
    };
    if let Some(m) = more {
        out.push_str(&format!("more: {m}\n"));
    }
    out
}

/// A page as the API's JSON (`{"items": …, "next_cursor": …}`) on one line.
pub fn page_json<T: serde::Serialize>(page: &Page<T>) -> Result<String, ApiError> {
    serde_json::to_string(page)
        .map(|s| format!("{s}\n"))
        .map_err(|e| ApiError::Usage(format!("printing JSON: {e}")))
}

/// `--buyer B` (quoted for a shell if needed) for a "more:" hint.
pub fn buyer_flag(buyer: Option<&str>) -> String {
    buyer.map_or_else(String::new, |b| {
        if b.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"-_.@".contains(&c))
        {
            format!(" --buyer {b}")
        } else {
            format!(" --buyer '{}'", b.replace('\'', r"'\''"))
        }
    })
}

/// Runs a reservation subcommand; returns what to print on stdout.
pub async fn run(args: &ReservationArgs) -> Result<String, ApiError> {
    let client = args.api.client()?;
    let json = args.api.json;
    match &args.command {
        ReservationCommand::Get { id } => {
            let r = client.reservation(reservation_id(id)?).await?;
            Ok(render(json, &r.raw, || reservation_text(&r)))
        }
        ReservationCommand::Extend { id, ttl_s } => {
            let r = client.extend(reservation_id(id)?, *ttl_s).await?;
            Ok(render(json, &r.raw, || {
                format!(
                    "extended reservation {id} until {}\n{}",
                    r.expires_at,
                    reservation_text(&r)
                )
            }))
        }
        ReservationCommand::Cancel { id } => {
            let r = client.cancel(reservation_id(id)?).await?;
            Ok(render(json, &r.raw, || {
                format!("released reservation {id}\n{}", reservation_text(&r))
            }))
        }
        ReservationCommand::List(list) => self::list(&client, list, json).await,
    }
}

/// `reservation list`: follows `next_cursor` until `--limit` items or the end.
async fn list(client: &ApiClient, args: &ListArgs, json: bool) -> Result<String, ApiError> {
    let want = args.limit.unwrap_or(DEFAULT_LIST_LIMIT);
    let page = collect_pages(args.query()?, want, |q| async move {
        client.list_reservations(&q).await.map(|r| r.into_inner())
    })
    .await?;
    if json {
        return page_json(&page);
    }
    let table = if page.items.is_empty() {
        String::new()
    } else {
        reservations_table(&page.items)
    };
    let more = page.next_cursor.as_ref().map(|c| {
        let mut hint = format!(
            "flashsale reservation list{}",
            buyer_flag(args.buyer.as_deref())
        );
        if let Some(s) = args.status {
            hint.push_str(&format!(
                " --status {}",
                ReservationStatus::from(s).as_str()
            ));
        }
        if let Some(s) = &args.sku {
            hint.push_str(&format!(" --sku {s}"));
        }
        hint.push_str(&format!(" --cursor {c}"));
        hint
    });
    Ok(listing("no reservations", table, more))
}
