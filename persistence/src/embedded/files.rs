//! File helpers of the embedded log: names, whole-file reads through glommio, directory sync,
//! and the snapshot file format.

use std::path::{Path, PathBuf};

use glommio::io::{DmaBuffer, DmaFile, OpenOptions};

/// Segment file name: the first sequence number it holds, zero padded.
pub fn segment_path(dir: &Path, first_seq: u64) -> PathBuf {
    dir.join(format!("{first_seq:020}.seg"))
}

/// Snapshot file name: the last sequence number it covers, zero padded.
pub fn snapshot_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:020}.snap"))
}

/// Files of `dir` named `<20 digits>.<ext>`, as (number, path), sorted by number.
pub fn list_numbered(dir: &Path, ext: &str) -> std::io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(stem) = name.strip_suffix(ext).and_then(|s| s.strip_suffix('.')) else {
            continue;
        };
        if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if let Ok(n) = stem.parse::<u64>() {
            out.push((n, entry.path()));
        }
    }
    out.sort_by_key(|(n, _)| *n);
    Ok(out)
}

/// Reads a whole file (recovery only). Plain buffered reads: on this kernel/glommio
/// combination, O_DIRECT io_uring reads of blocks written with O_DIRECT fail with EOPNOTSUPP,
/// and recovery runs before the shard serves, so blocking the executor briefly is harmless.
pub async fn read_all(path: &Path) -> std::io::Result<Vec<u8>> {
    std::fs::read(path)
}

/// Opens a file for O_DIRECT writing, creating it; `truncate` empties an existing one.
pub async fn open_for_write(path: &Path, truncate: bool) -> std::io::Result<DmaFile> {
    Ok(OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(truncate)
        .dma_open(path)
        .await?)
}

/// Makes the directory entries of `dir` durable (after create, rename or remove).
pub async fn sync_dir(dir: &Path) -> std::io::Result<()> {
    let d = glommio::io::Directory::open(dir).await?;
    d.sync().await?;
    d.close().await?;
    Ok(())
}

/// Writes `parts` at `pos` (aligned) padded with zeros to the file's alignment; a short write
/// is an error.
pub async fn write_padded(file: &DmaFile, pos: u64, parts: &[&[u8]]) -> std::io::Result<()> {
    write_buffer(file, padded_buffer(file, parts), pos).await
}

/// A DMA buffer holding `parts` one after the other, padded with zeros to the file's
/// alignment (what one O_DIRECT write of them needs).
pub fn padded_buffer(file: &DmaFile, parts: &[&[u8]]) -> DmaBuffer {
    let total: usize = parts.iter().map(|p| p.len()).sum();
    let len = file.align_up(total as u64) as usize;
    let mut buf = file.alloc_dma_buffer(len);
    let dst = buf.as_bytes_mut();
    let mut at = 0;
    for p in parts {
        dst[at..at + p.len()].copy_from_slice(p);
        at += p.len();
    }
    dst[at..].fill(0);
    buf
}

/// Writes a whole buffer (aligned length) at `pos` (aligned); a short write is an error.
pub async fn write_buffer(file: &DmaFile, buf: DmaBuffer, pos: u64) -> std::io::Result<()> {
    let len = buf.len();
    let written = file.write_at(buf, pos).await?;
    if written != len {
        return Err(std::io::Error::new(
            std::io::ErrorKind::WriteZero,
            format!("short write: {written} of {len} bytes at offset {pos}"),
        ));
    }
    Ok(())
}

/// Overwrites `[0, size)` of `file` with zeros (in 1 MiB writes), turning pre-allocated
/// (unwritten) extents into written ones.
pub async fn zero_fill(file: &DmaFile, size: u64) -> std::io::Result<()> {
    const CHUNK: u64 = 1 << 20;
    let mut pos = 0;
    while pos < size {
        let len = CHUNK.min(size - pos) as usize;
        write_padded(file, pos, &[&vec![0u8; len]]).await?;
        pos += len as u64;
    }
    Ok(())
}

/// Magic at the start of a snapshot file.
const SNAPSHOT_MAGIC: &[u8; 8] = b"FSSNAP01";
/// Snapshot header: magic, seq u64, len u64, crc32c u32, reserved u32.
pub const SNAPSHOT_HEADER_LEN: usize = 32;

/// The header of a snapshot of `len` bytes covering `..= seq`.
pub fn snapshot_header(seq: u64, snapshot: &[u8]) -> [u8; SNAPSHOT_HEADER_LEN] {
    let mut h = [0u8; SNAPSHOT_HEADER_LEN];
    h[0..8].copy_from_slice(SNAPSHOT_MAGIC);
    h[8..16].copy_from_slice(&seq.to_le_bytes());
    h[16..24].copy_from_slice(&(snapshot.len() as u64).to_le_bytes());
    h[24..28].copy_from_slice(&crc32c::crc32c(snapshot).to_le_bytes());
    h
}

/// Validates a snapshot file's contents; returns its seq and body, or why it is invalid.
pub fn parse_snapshot(file: &[u8]) -> Result<(u64, &[u8]), String> {
    let h = file
        .get(..SNAPSHOT_HEADER_LEN)
        .ok_or_else(|| format!("snapshot shorter than its header ({} bytes)", file.len()))?;
    if &h[0..8] != SNAPSHOT_MAGIC {
        return Err("bad snapshot magic".into());
    }
    let mut b8 = [0u8; 8];
    b8.copy_from_slice(&h[8..16]);
    let seq = u64::from_le_bytes(b8);
    b8.copy_from_slice(&h[16..24]);
    let len = u64::from_le_bytes(b8);
    let mut b4 = [0u8; 4];
    b4.copy_from_slice(&h[24..28]);
    let crc = u32::from_le_bytes(b4);
    let body = usize::try_from(len)
        .ok()
        .and_then(|len| file.get(SNAPSHOT_HEADER_LEN..SNAPSHOT_HEADER_LEN.checked_add(len)?))
        .ok_or_else(|| format!("snapshot truncated (header says {len} bytes)"))?;
    if crc32c::crc32c(body) != crc {
        return Err("snapshot checksum mismatch".into());
    }
    Ok((seq, body))
}
