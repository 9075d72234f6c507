//! A small filesystem of its own for the embedded log, so that it can be filled up: a sparse
//! image file (`truncate`), `mkfs.ext4`, `mount -o loop`. Filling it allocates the free space with
//! `fallocate` (no data written); freeing removes the fillers. Needs root and loop devices; when
//! the machine refuses, [`LoopDisk::create`] says why and the run goes on without that fault.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Size of the image: room for two 64 MiB segments (active + spare) per shard and snapshots.
pub fn image_mb(shards: usize) -> u64 {
    (shards as u64 * 2 * 64 + 128).max(384)
}

/// A mounted loop filesystem.
#[derive(Debug)]
pub struct LoopDisk {
    img: PathBuf,
    mnt: PathBuf,
    mounted: bool,
    fillers: Vec<PathBuf>,
}

fn run(cmd: &mut Command) -> Result<String, String> {
    let shown = format!("{cmd:?}").replace('"', "");
    match cmd.output() {
        Ok(o) if o.status.success() => Ok(String::from_utf8_lossy(&o.stdout).into_owned()),
        Ok(o) => Err(format!(
            "`{shown}` failed ({}): {}",
            o.status,
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Err(format!("`{shown}` could not run: {e}")),
    }
}

impl LoopDisk {
    /// Creates and mounts an image of `size_mb` under `dir`; `Err` says why it is not possible.
    pub fn create(dir: &Path, size_mb: u64) -> Result<LoopDisk, String> {
        if !super::postgres::is_root() {
            return Err("mounting a loop filesystem needs root".into());
        }
        let img = dir.join("disk.img");
        let mnt = dir.join("disk");
        std::fs::create_dir_all(&mnt).map_err(|e| format!("creating {}: {e}", mnt.display()))?;
        let mut disk = LoopDisk {
            img,
            mnt,
            mounted: false,
            fillers: Vec::new(),
        };
        run(Command::new("truncate")
            .arg("-s")
            .arg(format!("{size_mb}M"))
            .arg(&disk.img))?;
        run(Command::new("mkfs.ext4")
            .args(["-q", "-F", "-m", "0"])
            .arg(&disk.img))?;
        run(Command::new("mount")
            .args(["-o", "loop"])
            .arg(&disk.img)
            .arg(&disk.mnt))?;
        disk.mounted = true;
        Ok(disk)
    }

    /// The data dir to give the server (on the loop filesystem).
    pub fn data_dir(&self) -> PathBuf {
        self.mnt.join("data")
    }

    fn available_bytes(&self) -> Result<u64, String> {
        let out = run(Command::new("stat")
            .args(["-f", "-c", "%a %S"])
            .arg(&self.mnt))?;
        let mut it = out.split_whitespace().map(|v| v.parse::<u64>());
        match (it.next(), it.next()) {
            (Some(Ok(blocks)), Some(Ok(size))) => Ok(blocks * size),
            _ => Err(format!("cannot parse `stat -f` output {out:?}")),
        }
    }

    /// Allocates (nearly) all free space; returns the bytes still free afterwards.
    pub fn fill(&mut self) -> Result<u64, String> {
        for _ in 0..16 {
            let avail = self.available_bytes()?;
            if avail < 64 * 1024 {
                return Ok(avail);
            }
            let f = self.mnt.join(format!("filler-{}", self.fillers.len()));
            // Leave nothing: ext4 may need a few blocks of metadata for the filler itself, so
            // ask for slightly less when the whole amount is refused.
            let mut asked = avail;
            loop {
                let r = run(Command::new("fallocate")
                    .arg("-l")
                    .arg(asked.to_string())
                    .arg(&f));
                match r {
                    Ok(_) => {
                        self.fillers.push(f.clone());
                        break;
                    }
                    Err(e) if asked <= 64 * 1024 => return Err(e),
                    Err(_) => asked = asked / 4 * 3,
                }
            }
        }
        self.available_bytes()
    }

    /// Whether fillers are in place.
    pub fn is_full(&self) -> bool {
        !self.fillers.is_empty()
    }

    /// Removes the fillers.
    pub fn free(&mut self) -> Result<(), String> {
        for f in self.fillers.drain(..) {
            std::fs::remove_file(&f).map_err(|e| format!("removing {}: {e}", f.display()))?;
        }
        Ok(())
    }

    /// Unmounts and removes the image (the server must be stopped).
    pub fn teardown(&mut self) -> Result<(), String> {
        if self.mounted {
            let _ = self.free();
            if let Err(e) = run(Command::new("umount").arg(&self.mnt)) {
                // Still busy (a straggler holds a file): detach lazily, never leak the mount.
                run(Command::new("umount").arg("-l").arg(&self.mnt))
                    .map_err(|e2| format!("{e}; {e2}"))?;
            }
            self.mounted = false;
        }
        let _ = std::fs::remove_file(&self.img);
        Ok(())
    }
}

impl Drop for LoopDisk {
    fn drop(&mut self) {
        let _ = self.teardown();
    }
}
