//! `flashsale sku put|get|list|restock`: SKU management over the HTTP API.

use flashsale_protocol::SkuId;

use super::client::{ApiClient, ApiError, Page, Sku, SkuSettings, MAX_PAGE};
use super::output::{fields, number, opt, table, text};
use super::reservation::page_json;
use super::{render, ApiArgs};

/// `flashsale sku …`.
#[derive(Debug, Clone, clap::Args)]
pub struct SkuArgs {
    /// Server, token and output flags.
    #[command(flatten)]
    pub api: ApiArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: SkuCommand,
}

/// The SKU subcommands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum SkuCommand {
    /// Create a SKU, or replace its settings (admin token). Stock is the new total.
    Put(PutArgs),
    /// Show one SKU with its live counts.
    Get {
        /// SKU id.
        sku: String,
    },
    /// List SKUs, ordered by id (every page unless --limit).
    List(ListArgs),
    /// Add units to a SKU's stock (admin token).
    Restock {
        /// SKU id.
        sku: String,
        /// Units to add (positive).
        qty: u64,
    },
}

/// Flags of `flashsale sku put`.
#[derive(Debug, Clone, clap::Args)]
pub struct PutArgs {
    /// SKU id (`[A-Za-z0-9._-]{1,64}`).
    pub sku: String,
    /// Display name.
    #[arg(long)]
    pub name: String,
    /// Unit price in cents.
    #[arg(long)]
    pub price_cents: u64,
    /// Total stock (available + reserved + sold).
    #[arg(long)]
    pub stock: u64,
    /// Most units one buyer may hold or buy [default: no limit].
    #[arg(long)]
    pub per_buyer_limit: Option<u64>,
    /// Start of the sale window, RFC 3339 (e.g. 2026-11-21T10:00:00Z) [default: open now].
    #[arg(long, value_name = "TIME")]
    pub sale_starts_at: Option<String>,
    /// End of the sale window, RFC 3339 [default: no end].
    #[arg(long, value_name = "TIME")]
    pub sale_ends_at: Option<String>,
    /// How long a reservation holds stock before it expires, in seconds [default: the
    /// server's].
    #[arg(long)]
    pub reservation_ttl_s: Option<u64>,
    /// Longest a reservation with this SKU may be held from its creation, extensions
    /// included, in seconds [default: the larger of reservation_ttl_s and 3600].
    #[arg(long)]
    pub max_hold_s: Option<u64>,
    /// Most times a reservation with this SKU may be extended [default: 3].
    #[arg(long)]
    pub max_extensions: Option<u32>,
}

impl PutArgs {
    /// The `PUT /v1/skus/{sku}` settings (absent flags are not sent).
    pub fn settings(&self) -> SkuSettings {
        SkuSettings {
            name: self.name.clone(),
            price_cents: self.price_cents,
            stock: self.stock,
            per_buyer_limit: self.per_buyer_limit,
            sale_starts_at: self.sale_starts_at.clone(),
            sale_ends_at: self.sale_ends_at.clone(),
            reservation_ttl_s: self.reservation_ttl_s,
            max_hold_s: self.max_hold_s,
            max_extensions: self.max_extensions,
        }
    }
}

/// A SKU id from the command line.
pub fn sku_id(s: &str) -> Result<SkuId, ApiError> {
    SkuId::new(s).map_err(|e| ApiError::Usage(e.to_string()))
}

/// Flags of `flashsale sku list`.
#[derive(Debug, Clone, clap::Args)]
pub struct ListArgs {
    /// Show at most this many SKUs [default: all].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub limit: Option<u64>,
    /// Start after this point (the `next_cursor` of an earlier listing).
    #[arg(long)]
    pub cursor: Option<String>,
}

/// One SKU view as `field: value` lines.
pub fn sku_fields(v: &Sku) -> String {
    fields(&[
        ("sku", v.sku.to_string()),
        ("name", v.name.clone()),
        ("price_cents", v.price_cents.to_string()),
        ("total", v.total.to_string()),
        ("available", v.available.to_string()),
        ("reserved", v.reserved.to_string()),
        ("sold", v.sold.to_string()),
        ("per_buyer_limit", opt(v.per_buyer_limit)),
        ("sale_starts_at", opt(v.sale_starts_at.as_deref())),
        ("sale_ends_at", opt(v.sale_ends_at.as_deref())),
        ("reservation_ttl_s", v.reservation_ttl_s.to_string()),
        ("max_hold_s", v.max_hold_s.to_string()),
        ("max_extensions", v.max_extensions.to_string()),
    ])
}

/// SKU views as a table, one row each.
pub fn sku_table(items: &[Sku]) -> String {
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|v| {
            vec![
                v.sku.to_string(),
                v.name.clone(),
                v.price_cents.to_string(),
                v.total.to_string(),
                v.available.to_string(),
                v.reserved.to_string(),
                v.sold.to_string(),
                opt(v.per_buyer_limit),
                sale_window(v.sale_starts_at.as_deref(), v.sale_ends_at.as_deref()),
            ]
        })
        .collect();
    table(
        &[
            text("SKU"),
            text("NAME"),
            number("PRICE_CENTS"),
            number("TOTAL"),
            number("AVAILABLE"),
            number("RESERVED"),
            number("SOLD"),
            number("LIMIT"),
            text("SALE"),
        ],
        &rows,
    )
}

/// The sale window in one cell: `open`, `from T`, `until T` or `T .. T`.
fn sale_window(starts: Option<&str>, ends: Option<&str>) -> String {
    match (starts, ends) {
        (None, None) => "open".into(),
        (Some(s), None) => format!("from {s}"),
        (None, Some(e)) => format!("until {e}"),
        (Some(s), Some(e)) => format!("{s} .. {e}"),
    }
}

/// Runs a SKU subcommand; returns what to print on stdout.
pub async fn run(args: &SkuArgs) -> Result<String, ApiError> {
    let client = args.api.client()?;
    let json = args.api.json;
    match &args.command {
        SkuCommand::Put(put) => {
            let v = client.put_sku(&sku_id(&put.sku)?, &put.settings()).await?;
            let verb = if v.status == 201 {
                "created"
            } else {
                "updated"
            };
            Ok(render(json, &v.raw, || {
                format!("{verb} SKU {}\n{}", put.sku, sku_fields(&v))
            }))
        }
        SkuCommand::Get { sku } => {
            let v = client.sku(&sku_id(sku)?).await?;
            Ok(render(json, &v.raw, || sku_fields(&v)))
        }
        SkuCommand::Restock { sku, qty } => {
            let v = client.restock(&sku_id(sku)?, *qty).await?;
            Ok(render(json, &v.raw, || {
                format!("added {qty} to SKU {sku}\n{}", sku_fields(&v))
            }))
        }
        SkuCommand::List(list) => self::list(&client, list, json).await,
    }
}

/// `sku list`: follows `next_cursor` until the end or `--limit`.
async fn list(client: &ApiClient, args: &ListArgs, json: bool) -> Result<String, ApiError> {
    let mut items: Vec<Sku> = Vec::new();
    let mut cursor = args.cursor.clone();
    let want = args.limit.unwrap_or(u64::MAX);
    loop {
        let left = want.saturating_sub(items.len() as u64);
        let limit = u32::try_from(left.min(u64::from(MAX_PAGE))).unwrap_or(MAX_PAGE);
        let page = client
            .list_skus(limit, cursor.as_deref())
            .await?
            .into_inner();
        let empty = page.items.is_empty();
        items.extend(page.items);
        cursor = page.next_cursor;
        if cursor.is_none() || items.len() as u64 >= want || empty {
            break;
        }
    }
    if json {
        return page_json(&Page {
            items,
            next_cursor: cursor,
        });
    }
    let mut out = if items.is_empty() {
        "no SKUs\n".to_string()
    } else {
        sku_table(&items)
    };
    if let Some(c) = cursor {
        out.push_str(&format!("more: flashsale sku list --cursor {c}\n"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn put_sends_only_the_given_optional_fields() {
        let put = PutArgs {
            sku: "tee".into(),
            name: "Tee".into(),
            price_cents: 1999,
            stock: 100,
            per_buyer_limit: Some(2),
            sale_starts_at: None,
            sale_ends_at: None,
            reservation_ttl_s: None,
            max_hold_s: None,
            max_extensions: Some(0),
        };
        assert_eq!(
            serde_json::to_value(put.settings()).ok(),
            Some(
                json!({"name": "Tee", "price_cents": 1999, "stock": 100, "per_buyer_limit": 2, "max_extensions": 0})
            )
        );
    }

    #[test]
    fn sale_windows_read_in_one_cell() {
        assert_eq!(sale_window(None, None), "open");
        assert_eq!(sale_window(Some("A"), Some("B")), "A .. B");
        assert_eq!(sale_window(None, Some("B")), "until B");
    }
}
