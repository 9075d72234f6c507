//! Owner-only secret files: created with mode 0600 (never briefly wider), published atomically
//! and never over an existing file, and refused when group or others may read them.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

use super::IdentityError;

/// Mode of a secret file: read and write for the owner only.
pub const OWNER_ONLY: u32 = 0o600;

/// Permission bits that must be clear on a secret file (any access by group or others).
const GROUP_OR_OTHERS: u32 = 0o077;

/// Reads the secret file at `path`, or `None` if there is none. Refuses a file that group or
/// others may access, or that another user owns: its secrets may have leaked, and a server must
/// not silently keep using them.
pub fn read_private(path: &Path) -> Result<Option<Vec<u8>>, IdentityError> {
    let io = |source| IdentityError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(e)),
    };
    let meta = file.metadata().map_err(io)?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & GROUP_OR_OTHERS != 0 {
        return Err(IdentityError::Permissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me {
        return Err(IdentityError::Owner {
            path: path.to_path_buf(),
            owner: meta.uid(),
            me,
        });
    }
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut &file, &mut bytes).map_err(io)?;
    Ok(Some(bytes))
}

/// Writes `bytes` as the new secret file `path`, mode 0600 from the start, durably. Returns
/// `false` (and writes nothing) if `path` already exists: another process created it first.
pub fn create_private(path: &Path, bytes: &[u8]) -> Result<bool, IdentityError> {
    let io = |source| IdentityError::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    // A leftover from a crash of this same pid number would make create_new fail: remove it.
    let _ = std::fs::remove_file(&tmp);
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(OWNER_ONLY)
            .open(&tmp)?;
        // The umask can only narrow the mode; make sure it is exactly 0600 anyway.
        file.set_permissions(std::fs::Permissions::from_mode(OWNER_ONLY))?;
        file.write_all(bytes)?;
        file.sync_all()?;
        // A hard link publishes the complete file under its name, and fails if the name is
        // taken: two servers starting together never overwrite each other's identity.
        match std::fs::hard_link(&tmp, path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(e),
        }
    })();
    let _ = std::fs::remove_file(&tmp);
    let created = result.map_err(io)?;
    if created {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io)?;
    }
    Ok(created)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_files_are_owner_only_and_never_overwritten() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("secret.json");
        assert_eq!(read_private(&path).unwrap(), None);
        assert!(create_private(&path, b"one").unwrap());
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, OWNER_ONLY);
        assert!(!create_private(&path, b"two").unwrap(), "first one wins");
        assert_eq!(read_private(&path).unwrap().as_deref(), Some(&b"one"[..]));
        let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, vec![std::ffi::OsString::from("secret.json")]);
    }

    #[test]
    fn readable_by_others_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("secret.json");
        assert!(create_private(&path, b"x").unwrap());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = read_private(&path).unwrap_err();
        assert!(matches!(
            err,
            IdentityError::Permissions { mode: 0o644, .. }
        ));
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }
}
