//! `flashsale order get|list`: show an order, or list a buyer's orders, over the HTTP API
//! (storefront or admin token).

use flashsale_protocol::{BuyerId, OrderId};

use super::client::{ApiClient, ApiError, ListQuery, Order};
use super::output::{fields, number, table, text};
use super::reservation::{
    buyer_flag, collect_pages, lines_cell, lines_table, listing, page_json, DEFAULT_LIST_LIMIT,
};
use super::{render, ApiArgs};

/// `flashsale order …`.
#[derive(Debug, Clone, clap::Args)]
pub struct OrderArgs {
    /// Server, token and output flags.
    #[command(flatten)]
    pub api: ApiArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: OrderCommand,
}

/// The order subcommands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum OrderCommand {
    /// Show an order: buyer, payment reference, lines with prices, total.
    Get {
        /// Order id (`ord_…`).
        id: String,
    },
    /// List a buyer's orders, newest first.
    List(ListArgs),
}

/// Flags of `flashsale order list`.
#[derive(Debug, Clone, clap::Args)]
pub struct ListArgs {
    /// The buyer (required with a storefront or admin token; a buyer JWT lists itself).
    #[arg(long)]
    pub buyer: Option<String>,
    /// Show at most this many [default: 50].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub limit: Option<u32>,
    /// Start after this point (the `next_cursor` of an earlier listing).
    #[arg(long)]
    pub cursor: Option<String>,
}

/// An order id from the command line.
pub fn order_id(s: &str) -> Result<OrderId, ApiError> {
    OrderId::parse(s.trim())
        .map_err(|_| ApiError::Usage(format!("{s:?} is not an order id (ord_ and 16 hex digits)")))
}

/// An order view: its fields, then its lines.
pub fn order_text(o: &Order) -> String {
    let mut out = fields(&[
        ("id", o.id.to_string()),
        ("reservation_id", o.reservation_id.to_string()),
        ("buyer", o.buyer.to_string()),
        ("payment_ref", o.payment_ref.clone()),
        ("total_cents", o.total_cents.to_string()),
        ("created_at", o.created_at.clone()),
    ]);
    out.push('\n');
    out.push_str(&lines_table(&o.lines));
    out
}

/// Orders as a table, one row each.
pub fn orders_table(items: &[Order]) -> String {
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|o| {
            vec![
                o.id.to_string(),
                o.created_at.clone(),
                o.total_cents.to_string(),
                o.payment_ref.clone(),
                lines_cell(&o.lines),
            ]
        })
        .collect();
    table(
        &[
            text("ID"),
            text("CREATED_AT"),
            number("TOTAL_CENTS"),
            text("PAYMENT_REF"),
            text("LINES"),
        ],
        &rows,
    )
}

/// Runs an order subcommand; returns what to print on stdout.
pub async fn run(args: &OrderArgs) -> Result<String, ApiError> {
    let client = args.api.client()?;
    match &args.command {
        OrderCommand::Get { id } => {
            let o = client.order(order_id(id)?).await?;
            Ok(render(args.api.json, &o.raw, || order_text(&o)))
        }
        OrderCommand::List(list) => self::list(&client, list, args.api.json).await,
    }
}

/// `order list`: follows `next_cursor` until `--limit` items or the end.
async fn list(client: &ApiClient, args: &ListArgs, json: bool) -> Result<String, ApiError> {
    let buyer = args
        .buyer
        .as_deref()
        .map(BuyerId::new)
        .transpose()
        .map_err(|e| ApiError::Usage(e.to_string()))?;
    let q = ListQuery {
        buyer,
        cursor: args.cursor.clone(),
        ..ListQuery::default()
    };
    let want = args.limit.unwrap_or(DEFAULT_LIST_LIMIT);
    let page = collect_pages(q, want, |q| async move {
        client.list_orders(&q).await.map(|r| r.into_inner())
    })
    .await?;
    if json {
        return page_json(&page);
    }
    let table = if page.items.is_empty() {
        String::new()
    } else {
        orders_table(&page.items)
    };
    let more = page.next_cursor.as_ref().map(|c| {
        format!(
            "flashsale order list{} --cursor {c}",
            buyer_flag(args.buyer.as_deref())
        )
    });
    Ok(listing("no orders", table, more))
}
