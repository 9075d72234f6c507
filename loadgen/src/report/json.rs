//! Writing the report as pretty JSON.

use std::path::Path;

use anyhow::Context;

use super::Report;

/// Writes `report` to `path` (via a temporary file, so a reader never sees half a report).
pub fn write(report: &Report, path: &Path) -> anyhow::Result<()> {
    let json = serde_json::to_vec_pretty(report).context("serialising the report")?;
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, &json).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}
