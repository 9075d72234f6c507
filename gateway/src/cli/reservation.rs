//! `flashsale reservation get|cancel`: look at or release a reservation over the HTTP API
//! (storefront or admin token).

use hyper::Method;
use serde_json::Value;

use super::client::{encode, ApiError};
use super::output::{fields, get, number, table, text};
use super::{render, ApiArgs};

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
    /// Release a held reservation: its units become available again.
    Cancel {
        /// Reservation id (`res_…`).
        id: String,
    },
}

/// Lines of a reservation or order as a table.
pub fn lines_table(v: &Value) -> String {
    let rows: Vec<Vec<String>> = v
        .get("lines")
        .and_then(Value::as_array)
        .map(|lines| {
            lines
                .iter()
                .map(|l| vec![get(l, "sku"), get(l, "qty"), get(l, "unit_price_cents")])
                .collect()
        })
        .unwrap_or_default();
    table(
        &[text("SKU"), number("QTY"), number("UNIT_PRICE_CENTS")],
        &rows,
    )
}

/// A reservation view: its fields, then its lines.
pub fn reservation_text(v: &Value) -> String {
    let mut out = fields(&[
        ("id", get(v, "id")),
        ("status", get(v, "status")),
        ("buyer", get(v, "buyer")),
        ("total_cents", get(v, "total_cents")),
        ("created_at", get(v, "created_at")),
        ("expires_at", get(v, "expires_at")),
        ("order_id", get(v, "order_id")),
        ("release_reason", get(v, "release_reason")),
    ]);
    out.push('\n');
    out.push_str(&lines_table(v));
    out
}

/// Runs a reservation subcommand; returns what to print on stdout.
pub async fn run(args: &ReservationArgs) -> Result<String, ApiError> {
    let client = args.api.client()?;
    match &args.command {
        ReservationCommand::Get { id } => {
            let a = client
                .get(&format!("/v1/reservations/{}", encode(id)))
                .await?;
            Ok(render(args.api.json, &a, || reservation_text(&a.json)))
        }
        ReservationCommand::Cancel { id } => {
            let path = format!("/v1/reservations/{}/cancel", encode(id));
            let a = client.send(Method::POST, &path, None).await?;
            Ok(render(args.api.json, &a, || {
                format!("released reservation {id}\n{}", reservation_text(&a.json))
            }))
        }
    }
}
