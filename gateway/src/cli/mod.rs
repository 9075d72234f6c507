//! Operator commands of the `flashsale` binary besides `serve` and `watch`
//! (contract: "Admin CLI").
//!
//! - Admin commands over the HTTP API: [`sku`] (`put`, `get`, `list`, `restock`),
//!   [`reservation`] (`get`, `list`, `extend`, `cancel`) and [`order`] (`get`, `list`). Each
//!   takes `--server URL` (default `http://127.0.0.1:8080`; repeated or a comma list for the
//!   nodes of an HA group, the client then follows the leader), `--token T` (env
//!   `FLASHSALE_TOKEN`) and `--json` (print the API's JSON instead of a table). A problem is
//!   one line on stderr and exit code 1.
//! - [`credentials`]: `credentials show` prints the identity `serve` stored in its data dir.
//! - [`client`]: the HTTP client; [`output`]: tables for people.

/// The HTTP client of the admin commands: the workspace's one Rust client of the API.
pub use flashsale_client as client;
pub mod credentials;
pub mod order;
pub mod output;
pub mod reservation;
pub mod sku;

use std::time::Duration;

use client::{ApiClient, ApiError};

/// Flags shared by the admin commands (usable before or after the subcommand).
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Server options")]
pub struct ApiArgs {
    /// Base URL of the HTTP API (the `--http` address of `flashsale serve`). Repeat it, or give
    /// a comma list, for the nodes of an HA group: calls go to the leader (a standby's
    /// `503 not-leader` names it; reads and idempotent writes are sent again there).
    #[arg(
        long,
        global = true,
        env = "FLASHSALE_URL",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:8080"
    )]
    pub server: Vec<String>,

    /// Bearer token: admin for `sku put` and `sku restock`, storefront or admin for
    /// reservations and orders, any for `sku get` and `sku list`. `flashsale credentials show`
    /// prints the generated ones.
    #[arg(long, global = true, env = "FLASHSALE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,

    /// Print the API's JSON answer (one object per line) instead of a table.
    #[arg(long, global = true)]
    pub json: bool,

    /// Longest wait for the server's answer, in ms.
    #[arg(long, global = true, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=600_000))]
    pub timeout_ms: u64,
}

impl ApiArgs {
    /// The client these flags describe.
    pub fn client(&self) -> Result<ApiClient, ApiError> {
        let token = self.token.as_deref().map(str::trim).unwrap_or_default();
        if token.is_empty() {
            return Err(ApiError::Usage(
                "no token: pass --token or set FLASHSALE_TOKEN (`flashsale credentials show` \
                 prints the tokens `flashsale serve` generated)"
                    .into(),
            ));
        }
        ApiClient::with_servers(
            &client::split_servers(&self.server),
            token,
            Duration::from_millis(self.timeout_ms),
        )
    }
}

/// What a command prints on stdout: the API's JSON as sent (`raw`) or a table.
pub fn render(json: bool, raw: &[u8], table: impl FnOnce() -> String) -> String {
    if json {
        let mut out = String::from_utf8_lossy(raw).trim_end().to_string();
        out.push('\n');
        out
    } else {
        table()
    }
}

/// Prints `text` on stdout; a closed pipe (`| head`) is not an error.
pub fn print(text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(anyhow::Error::new(e).context("writing to stdout")),
    }
}
