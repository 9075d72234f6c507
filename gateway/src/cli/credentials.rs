//! `flashsale credentials show`: prints again what `flashsale serve` stored in its data dir at
//! the first start (tokens, the stream certificate's fingerprint), for people or scripts.

use std::path::PathBuf;

use anyhow::Context as _;

use super::output::fields;
use crate::identity::{self, Identity};

/// `flashsale credentials …`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum CredentialsCommand {
    /// Print the generated tokens and the stream certificate fingerprint kept in a data dir.
    Show(ShowArgs),
}

/// One value `credentials show --only` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Field {
    /// The generated admin token.
    AdminToken,
    /// The generated storefront token.
    StorefrontToken,
    /// SHA-256 fingerprint of the stream certificate (for `watch --fingerprint`).
    Fingerprint,
    /// The stream certificate, PEM (for `watch --ca` with `--server-name localhost`).
    Certificate,
    /// Path of the identity file.
    Path,
}

/// Flags of `flashsale credentials show`.
#[derive(Debug, Clone, clap::Args)]
pub struct ShowArgs {
    /// The server's data dir (its `--data-dir`).
    #[arg(long, env = "FLASHSALE_DATA_DIR", default_value = "./flashsale-data")]
    pub data_dir: PathBuf,

    /// Print only this value, alone on its line (for scripts:
    /// `export FLASHSALE_TOKEN=$(flashsale credentials show --only admin-token)`).
    #[arg(long, value_enum, conflicts_with = "json")]
    pub only: Option<Field>,

    /// Print a JSON object (`admin_token`, `storefront_token`, `fingerprint`, `path`).
    #[arg(long)]
    pub json: bool,
}

/// Runs `credentials show`; returns what to print on stdout.
pub fn show(args: &ShowArgs) -> anyhow::Result<String> {
    let path = identity::path_in(&args.data_dir);
    let identity = Identity::load(&args.data_dir)?.with_context(|| {
        format!(
            "no identity in {}: `flashsale serve --data-dir {}` creates it at its first start",
            args.data_dir.display(),
            args.data_dir.display()
        )
    })?;
    let fingerprint = identity.fingerprint()?;
    let path_text = path.display().to_string();
    let out = match args.only {
        Some(Field::AdminToken) => format!("{}\n", identity.admin_token),
        Some(Field::StorefrontToken) => format!("{}\n", identity.storefront_token),
        Some(Field::Fingerprint) => format!("{fingerprint}\n"),
        Some(Field::Certificate) => identity.certificate_pem.clone(),
        Some(Field::Path) => format!("{path_text}\n"),
        None if args.json => {
            let v = serde_json::json!({
                "admin_token": identity.admin_token,
                "storefront_token": identity.storefront_token,
                "fingerprint": fingerprint,
                "path": path_text,
            });
            format!("{v}\n")
        }
        None => {
            let mut out = fields(&[
                ("admin token", identity.admin_token.clone()),
                ("storefront token", identity.storefront_token.clone()),
                ("certificate sha256", fingerprint),
                ("identity file", path_text),
            ]);
            out.push_str(
                "(`flashsale serve` uses these unless --admin-token, --storefront-token or \
                 --tls-cert are given)\n",
            );
            out
        }
    };
    Ok(out)
}
