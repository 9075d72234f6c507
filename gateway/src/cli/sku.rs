//! `flashsale sku put|get|list|restock`: SKU management over the HTTP API.

use hyper::Method;
use serde_json::{json, Map, Value};

use super::client::{encode, ApiClient, ApiError};
use super::output::{fields, get, number, table, text};
use super::{render, ApiArgs};

/// Largest page the API serves (`GET /v1/skus?limit=`).
const MAX_PAGE: u64 = 1_000;

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
}

impl PutArgs {
    /// The `PUT /v1/skus/{sku}` body.
    pub fn body(&self) -> Value {
        let mut body = Map::new();
        body.insert("name".into(), json!(self.name));
        body.insert("price_cents".into(), json!(self.price_cents));
        body.insert("stock".into(), json!(self.stock));
        let optional = [
            ("per_buyer_limit", self.per_buyer_limit.map(|v| json!(v))),
            (
                "sale_starts_at",
                self.sale_starts_at.as_ref().map(|v| json!(v)),
            ),
            ("sale_ends_at", self.sale_ends_at.as_ref().map(|v| json!(v))),
            (
                "reservation_ttl_s",
                self.reservation_ttl_s.map(|v| json!(v)),
            ),
        ];
        for (k, v) in optional {
            if let Some(v) = v {
                body.insert(k.into(), v);
            }
        }
        Value::Object(body)
    }
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
pub fn sku_fields(v: &Value) -> String {
    fields(&[
        ("sku", get(v, "sku")),
        ("name", get(v, "name")),
        ("price_cents", get(v, "price_cents")),
        ("total", get(v, "total")),
        ("available", get(v, "available")),
        ("reserved", get(v, "reserved")),
        ("sold", get(v, "sold")),
        ("per_buyer_limit", get(v, "per_buyer_limit")),
        ("sale_starts_at", get(v, "sale_starts_at")),
        ("sale_ends_at", get(v, "sale_ends_at")),
        ("reservation_ttl_s", get(v, "reservation_ttl_s")),
    ])
}

/// SKU views as a table, one row each.
pub fn sku_table(items: &[Value]) -> String {
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|v| {
            vec![
                get(v, "sku"),
                get(v, "name"),
                get(v, "price_cents"),
                get(v, "total"),
                get(v, "available"),
                get(v, "reserved"),
                get(v, "sold"),
                get(v, "per_buyer_limit"),
                sale_window(v),
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
fn sale_window(v: &Value) -> String {
    let at = |k: &str| v.get(k).and_then(Value::as_str);
    match (at("sale_starts_at"), at("sale_ends_at")) {
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
            let path = format!("/v1/skus/{}", encode(&put.sku));
            let a = client.send(Method::PUT, &path, Some(&put.body())).await?;
            let verb = if a.status == 201 {
                "created"
            } else {
                "updated"
            };
            Ok(render(json, &a, || {
                format!("{verb} SKU {}\n{}", put.sku, sku_fields(&a.json))
            }))
        }
        SkuCommand::Get { sku } => {
            let a = client.get(&format!("/v1/skus/{}", encode(sku))).await?;
            Ok(render(json, &a, || sku_fields(&a.json)))
        }
        SkuCommand::Restock { sku, qty } => {
            let path = format!("/v1/skus/{}/restock", encode(sku));
            let a = client
                .send(Method::POST, &path, Some(&json!({ "qty": qty })))
                .await?;
            Ok(render(json, &a, || {
                format!("added {qty} to SKU {sku}\n{}", sku_fields(&a.json))
            }))
        }
        SkuCommand::List(list) => self::list(&client, list, json).await,
    }
}

/// `sku list`: follows `next_cursor` until the end or `--limit`.
async fn list(client: &ApiClient, args: &ListArgs, json: bool) -> Result<String, ApiError> {
    let mut items: Vec<Value> = Vec::new();
    let mut cursor = args.cursor.clone();
    let want = args.limit.unwrap_or(u64::MAX);
    loop {
        let left = want.saturating_sub(items.len() as u64);
        let mut path = format!("/v1/skus?limit={}", left.min(MAX_PAGE));
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={}", encode(c)));
        }
        let a = client.get(&path).await?;
        let page = a
            .json
            .get("items")
            .and_then(Value::as_array)
            .ok_or_else(|| ApiError::BadAnswer {
                server: client.server().to_string(),
                reason: "a SKU page without `items`".into(),
            })?;
        items.extend(page.iter().cloned());
        cursor = a
            .json
            .get("next_cursor")
            .and_then(Value::as_str)
            .map(str::to_owned);
        if cursor.is_none() || items.len() as u64 >= want || page.is_empty() {
            break;
        }
    }
    if json {
        let page = json!({ "items": items, "next_cursor": cursor });
        return Ok(format!("{page}\n"));
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
        };
        assert_eq!(
            put.body(),
            json!({"name": "Tee", "price_cents": 1999, "stock": 100, "per_buyer_limit": 2})
        );
    }

    #[test]
    fn sale_windows_read_in_one_cell() {
        assert_eq!(sale_window(&json!({})), "open");
        assert_eq!(
            sale_window(&json!({"sale_starts_at": "A", "sale_ends_at": "B"})),
            "A .. B"
        );
        assert_eq!(sale_window(&json!({"sale_ends_at": "B"})), "until B");
    }
}
