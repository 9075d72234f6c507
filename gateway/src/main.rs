//! `flashsale`: engine + HTTP gateway + QUIC stock stream in one process.

fn main() -> anyhow::Result<()> {
    anyhow::bail!("not wired yet")
}
