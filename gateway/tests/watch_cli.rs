//! `flashsale watch` as a user runs it: a SKU that does not exist is named, and a close reason
//! names its code once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use support::{Server, PARTNER};

/// Kills the child when dropped, so a failing test leaves no process behind.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn watch_names_missing_skus_and_close_codes_once() {
    let server = Server::start(&[]);
    let (addr, fingerprint) = server.quic();
    let watch = Command::new(env!("CARGO_BIN_EXE_flashsale"))
        .args(["watch", "--server", &addr.to_string(), "--token", PARTNER])
        .args(["--fingerprint", &fingerprint, "--sku", "nosuch"])
        .env_remove("FLASHSALE_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut watch = KillOnDrop(watch);
    let stderr = watch.0.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let next_line = |what: &str| -> String {
        loop {
            let line = rx
                .recv_timeout(Duration::from_secs(15))
                .unwrap_or_else(|e| panic!("no {what} line from watch: {e}"));
            if line.contains(what) {
                return line;
            }
        }
    };
    let missing = next_line("does not exist");
    assert!(
        missing.starts_with("SKU nosuch does not exist"),
        "{missing}"
    );

    assert!(server.stop().success());
    let closed = next_line("disconnected");
    assert!(closed.contains("server shutdown (6)"), "{closed}");
    assert_eq!(closed.matches("(6)").count(), 1, "code once: {closed}");
}
