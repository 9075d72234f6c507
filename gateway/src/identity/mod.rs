//! The server's identity, kept across restarts: the generated admin and storefront tokens, the
//! self-signed certificate and key of the QUIC stream, and the secret of its stateless-reset key.
//!
//! It lives in one owner-only file (mode 0600), `identity.json` in the identity directory
//! (`flashsale serve --data-dir`, with either log backend). The first start creates it (and
//! prints the tokens once); later starts reuse it, so storefronts keep their token and stream
//! clients keep their pinned fingerprint; `flashsale credentials show` prints it again. Tokens
//! given with `--admin-token`/`--storefront-token` (or `--tls-cert`/`--tls-key`) take the place
//! of the stored ones while given.
//!
//! - [`file`]: creating and reading owner-only files.
//! - [`reset_key`]: the stateless-reset key quinn signs with.

pub mod file;
pub mod reset_key;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::stream::TlsIdentity;
pub use reset_key::{ResetKey, RESET_SECRET_LEN};

/// Name of the identity file in its directory.
pub const FILE_NAME: &str = "identity.json";

/// Version of the identity file this build writes (and the newest it reads).
pub const FORMAT_VERSION: u32 = 1;

/// Why the identity could not be read or created.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// Reading, writing or creating a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file may be read by group or others.
    #[error(
        "{} holds secrets but is readable by others (mode {mode:03o}); run `chmod 600 {}` (and \
         consider the tokens leaked: remove the file to generate new ones)",
        path.display(),
        path.display()
    )]
    Permissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The file belongs to another user.
    #[error("{} belongs to user {owner}, not to this user ({me})", path.display())]
    Owner {
        /// The file.
        path: PathBuf,
        /// Its owner's uid.
        owner: u32,
        /// Our effective uid.
        me: u32,
    },
    /// The file's content is not an identity this build understands.
    #[error("{} is not a valid identity file: {reason}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A certificate could not be generated.
    #[error("cannot generate the stream certificate: {0}")]
    Certificate(String),
}

/// The stored identity (the JSON file is this struct).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    /// File format version ([`FORMAT_VERSION`]).
    pub version: u32,
    /// Generated admin token (used unless `--admin-token` is given).
    pub admin_token: String,
    /// Generated storefront token (used unless `--storefront-token` is given).
    pub storefront_token: String,
    /// Self-signed certificate of the QUIC stream, PEM (used unless `--tls-cert` is given).
    pub certificate_pem: String,
    /// Its private key, PKCS#8 PEM.
    pub private_key_pem: String,
    /// Secret of the QUIC stateless-reset key, hex.
    pub stateless_reset_secret: String,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// Where the identity of a server with identity directory `dir` is kept.
pub fn path_in(dir: &Path) -> PathBuf {
    dir.join(FILE_NAME)
}

/// A fresh random token (256 bits, hex).
pub fn generate_token() -> String {
    hex::encode(random_bytes::<32>())
}

/// `N` bytes from the OS random number generator.
fn random_bytes<const N: usize>() -> [u8; N] {
    use rand::RngCore as _;
    let mut bytes = [0u8; N];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes
}

/// The names a generated certificate covers: `localhost`, the loopback addresses, `ip` (the
/// stream's address) if it is a specific one, and `extra`.
pub fn certificate_names(ip: std::net::IpAddr, extra: &[String]) -> Vec<String> {
    let mut names = vec!["localhost".to_string(), "127.0.0.1".into(), "::1".into()];
    if !ip.is_unspecified() && !names.contains(&ip.to_string()) {
        names.push(ip.to_string());
    }
    for name in extra {
        if !names.contains(name) {
            names.push(name.clone());
        }
    }
    names
}

impl Identity {
    /// A new identity: random tokens and reset secret, a self-signed certificate for `names`.
    pub fn generate(names: Vec<String>) -> Result<Identity, IdentityError> {
        let certified = rcgen::generate_simple_self_signed(names)
            .map_err(|e| IdentityError::Certificate(e.to_string()))?;
        Ok(Identity {
            version: FORMAT_VERSION,
            admin_token: generate_token(),
            storefront_token: generate_token(),
            certificate_pem: certified.cert.pem(),
            private_key_pem: certified.key_pair.serialize_pem(),
            stateless_reset_secret: hex::encode(random_bytes::<RESET_SECRET_LEN>()),
        })
    }

    /// Reads the identity in `dir`, or `None` if there is none yet. Refuses a file others may
    /// read, and content this build does not understand.
    pub fn load(dir: &Path) -> Result<Option<Identity>, IdentityError> {
        let path = path_in(dir);
        let Some(bytes) = file::read_private(&path)? else {
            return Ok(None);
        };
        let invalid = |reason: String| IdentityError::Invalid {
            path: path.clone(),
            reason,
        };
        let identity: Identity =
            serde_json::from_slice(&bytes).map_err(|e| invalid(e.to_string()))?;
        if identity.version != FORMAT_VERSION {
            return Err(invalid(format!(
                "format version {} (this build reads {FORMAT_VERSION})",
                identity.version
            )));
        }
        identity.validate().map_err(invalid)?;
        Ok(Some(identity))
    }

    /// The identity in `dir`, creating `dir` and the identity (for certificate `names`) if
    /// there is none. The flag says whether it was created now (then its tokens are new and
    /// should be shown once).
    pub fn load_or_create(
        dir: &Path,
        names: Vec<String>,
    ) -> Result<(Identity, bool), IdentityError> {
        if let Some(identity) = Self::load(dir)? {
            return Ok((identity, false));
        }
        std::fs::create_dir_all(dir).map_err(|source| IdentityError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let identity = Self::generate(names)?;
        let mut json =
            serde_json::to_vec_pretty(&identity).map_err(|e| IdentityError::Invalid {
                path: path_in(dir),
                reason: e.to_string(),
            })?;
        json.push(b'\n');
        if file::create_private(&path_in(dir), &json)? {
            return Ok((identity, true));
        }
        // Another process created it between our look and our write: use theirs.
        match Self::load(dir)? {
            Some(identity) => Ok((identity, false)),
            None => Err(IdentityError::Invalid {
                path: path_in(dir),
                reason: "it vanished while being created".into(),
            }),
        }
    }

    /// Checks every field can be used (tokens printable, certificate and key parse and match,
    /// reset secret of the right length).
    fn validate(&self) -> Result<(), String> {
        for (name, token) in [
            ("admin_token", &self.admin_token),
            ("storefront_token", &self.storefront_token),
        ] {
            if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(format!("{name} must be printable ASCII without spaces"));
            }
        }
        self.reset_secret()?;
        let tls = self.tls().map_err(|e| e.to_string())?;
        tls.server_crypto().map_err(|e| e.to_string())?;
        Ok(())
    }

    /// The stateless-reset secret as bytes.
    pub fn reset_secret(&self) -> Result<[u8; RESET_SECRET_LEN], String> {
        let bytes = hex::decode(&self.stateless_reset_secret)
            .map_err(|e| format!("stateless_reset_secret: {e}"))?;
        <[u8; RESET_SECRET_LEN]>::try_from(bytes.as_slice())
            .map_err(|_| format!("stateless_reset_secret must be {RESET_SECRET_LEN} bytes (hex)"))
    }

    /// The stored certificate and key, ready for the stream server.
    pub fn tls(&self) -> Result<TlsIdentity, crate::stream::StreamError> {
        TlsIdentity::from_pem(
            self.certificate_pem.as_bytes(),
            self.private_key_pem.as_bytes(),
            "identity certificate",
        )
        .map(|mut t| {
            t.self_signed = true;
            t
        })
    }

    /// SHA-256 fingerprint of the stored certificate (what `watch --fingerprint` pins).
    pub fn fingerprint(&self) -> Result<String, crate::stream::StreamError> {
        Ok(self.tls()?.fingerprint())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn names() -> Vec<String> {
        certificate_names("127.0.0.1".parse().unwrap(), &[])
    }

    #[test]
    fn created_once_then_reused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        let (first, created) = Identity::load_or_create(&dir, names()).unwrap();
        assert!(created);
        let (again, created) = Identity::load_or_create(&dir, names()).unwrap();
        assert!(!created);
        assert_eq!(first, again);
        assert_eq!(first.fingerprint().unwrap(), again.fingerprint().unwrap());
        assert_eq!(first.admin_token.len(), 64);
        assert_ne!(first.admin_token, first.storefront_token);
        assert_eq!(first.reset_secret().unwrap().len(), RESET_SECRET_LEN);
        let mode = std::fs::metadata(path_in(&dir))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn damaged_or_exposed_files_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let (identity, _) = Identity::load_or_create(dir, names()).unwrap();
        let path = path_in(dir);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(matches!(
            Identity::load(dir),
            Err(IdentityError::Permissions { .. })
        ));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let mut bad = identity.clone();
        bad.stateless_reset_secret = "abcd".into();
        std::fs::write(&path, serde_json::to_vec(&bad).unwrap()).unwrap();
        let err = Identity::load(dir).unwrap_err();
        assert!(err.to_string().contains("stateless_reset_secret"), "{err}");
        let mut bad = identity;
        bad.private_key_pem = Identity::generate(names()).unwrap().private_key_pem;
        std::fs::write(&path, serde_json::to_vec(&bad).unwrap()).unwrap();
        assert!(matches!(
            Identity::load(dir),
            Err(IdentityError::Invalid { .. })
        ));
        std::fs::write(&path, b"{not json").unwrap();
        assert!(matches!(
            Identity::load(dir),
            Err(IdentityError::Invalid { .. })
        ));
    }

    #[test]
    fn certificate_names_cover_loopback_and_the_bound_address() {
        let n = certificate_names("10.1.2.3".parse().unwrap(), &["flash.example".into()]);
        assert_eq!(
            n,
            ["localhost", "127.0.0.1", "::1", "10.1.2.3", "flash.example"]
        );
        let n = certificate_names("0.0.0.0".parse().unwrap(), &[]);
        assert_eq!(n, ["localhost", "127.0.0.1", "::1"]);
    }
}
