//! `flashsale-loadgen` (being written: see the loadgen issue).

fn main() -> anyhow::Result<()> {
    anyhow::bail!("not written yet")
}
