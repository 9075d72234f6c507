//! `flashsale order get`: show an order over the HTTP API (storefront or admin token).

use serde_json::Value;

use super::client::{encode, ApiError};
use super::output::{fields, get};
use super::reservation::lines_table;
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
}

/// An order view: its fields, then its lines.
pub fn order_text(v: &Value) -> String {
    let mut out = fields(&[
        ("id", get(v, "id")),
        ("reservation_id", get(v, "reservation_id")),
        ("buyer", get(v, "buyer")),
        ("payment_ref", get(v, "payment_ref")),
        ("total_cents", get(v, "total_cents")),
        ("created_at", get(v, "created_at")),
    ]);
    out.push('\n');
    out.push_str(&lines_table(v));
    out
}

/// Runs an order subcommand; returns what to print on stdout.
pub async fn run(args: &OrderArgs) -> Result<String, ApiError> {
    let client = args.api.client()?;
    match &args.command {
        OrderCommand::Get { id } => {
            let a = client.get(&format!("/v1/orders/{}", encode(id))).await?;
            Ok(render(args.api.json, &a, || order_text(&a.json)))
        }
    }
}
