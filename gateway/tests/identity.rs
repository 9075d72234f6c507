//! The server's identity survives restarts with both log backends: the generated tokens and
//! the stream certificate are the same after a restart (printed only when first created), and
//! `flashsale credentials show` prints them again. Flags still win; a secret file others may
//! read is refused; a bad flag is refused before any token is printed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use serde_json::{json, Value};
use support::{flashsale, Api, Launch, PgSchema, Server, DATABASE_URL};

/// Two starts on the same data dir (with `extra` flags) and what each printed.
async fn restart_keeps_the_identity(extra: &[&str]) {
    let tmp = tempfile::tempdir().unwrap();
    let first = Server::launch(
        tmp.path(),
        Launch {
            extra,
            with_tokens: false,
            ..Launch::default()
        },
    );
    let admin = first.generated_token("admin").expect("admin token printed");
    let shop = first
        .generated_token("storefront")
        .expect("storefront token printed");
    let (_, fingerprint) = first.quic();
    let api = Api::new(&first);
    let r = api
        .send(
            "PUT",
            "/v1/skus/tee",
            Some(&admin),
            Some(json!({"name": "Tee", "price_cents": 100, "stock": 3})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert!(first.stop().success());

    let stderr = tmp.path().join("second-start.log");
    let mut flags: Vec<&str> = extra.to_vec();
    flags.extend(["--log-level", "info"]);
    let second = Server::launch(
        tmp.path(),
        Launch {
            extra: &flags,
            with_tokens: false,
            stderr: Some(&stderr),
            ..Launch::default()
        },
    );
    assert_eq!(second.generated_token("admin"), None, "printed only once");
    assert_eq!(second.generated_token("storefront"), None);
    assert!(
        second.banner.iter().any(|l| l.contains("credentials show")),
        "says where they are: {:?}",
        second.banner
    );
    assert_eq!(second.quic().1, fingerprint, "same certificate");
    let api = Api::new(&second);
    assert_eq!(api.get("/v1/skus/tee", &shop).await.status, 200);
    let r = api
        .send(
            "POST",
            "/v1/skus/tee/restock",
            Some(&admin),
            Some(json!({"qty": 1})),
        )
        .await;
    assert_eq!(
        r.status, 200,
        "the stored admin token still works: {}",
        r.body
    );

    let data_dir = Server::data_dir_in(tmp.path());
    let data = data_dir.to_str().unwrap();
    let (code, out, err) = flashsale(&["credentials", "show", "--data-dir", data, "--json"], &[]);
    assert_eq!(code, 0, "{err}");
    let shown: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(shown["admin_token"], admin.as_str());
    assert_eq!(shown["storefront_token"], shop.as_str());
    assert_eq!(shown["fingerprint"], fingerprint.as_str());
    let (code, out, _) = flashsale(
        &["credentials", "show", "--only", "fingerprint"],
        &[("FLASHSALE_DATA_DIR", data)],
    );
    assert_eq!((code, out.trim()), (0, fingerprint.as_str()));
    let mode = std::fs::metadata(data_dir.join("identity.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "owner only");
    assert!(second.stop().success());

    let log = std::fs::read_to_string(&stderr).unwrap();
    assert!(
        !log.contains("NOTICE") && !log.contains("already exists"),
        "a second start logs no Postgres notices:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_backend_keeps_tokens_and_certificate() {
    restart_keeps_the_identity(&[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_backend_keeps_tokens_and_certificate() {
    // A schema of its own, dropped afterwards; fails (not skips) without Postgres.
    let schema = PgSchema::new("identity");
    restart_keeps_the_identity(&[
        "--database-url",
        DATABASE_URL,
        "--database-schema",
        schema.name(),
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flags_win_over_the_stored_tokens() {
    let tmp = tempfile::tempdir().unwrap();
    let first = Server::start_in(tmp.path(), &[], false);
    let stored_admin = first.generated_token("admin").unwrap();
    let stored_shop = first.generated_token("storefront").unwrap();
    assert!(first.stop().success());
    let second = Server::start_in(tmp.path(), &["--admin-token", "chosen-admin"], false);
    let api = Api::new(&second);
    let body = json!({"name": "Tee", "price_cents": 100, "stock": 3});
    let r = api
        .send(
            "PUT",
            "/v1/skus/tee",
            Some(&stored_admin),
            Some(body.clone()),
        )
        .await;
    assert_eq!(r.status, 401, "the flag replaces the stored admin token");
    let r = api
        .send("PUT", "/v1/skus/tee", Some("chosen-admin"), Some(body))
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(api.get("/v1/skus/tee", &stored_shop).await.status, 200);
    assert!(second.stop().success());
}

/// `flashsale serve` on `data` and HTTP address `http` with `extra`, expected to refuse to
/// start.
fn refused_start(data: &Path, http: &str, extra: &[&str]) -> (String, String) {
    let mut args = vec![
        "serve",
        "--http",
        http,
        "--quic",
        "127.0.0.1:0",
        "--data-dir",
        data.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let (code, out, err) = flashsale(&args, &[]);
    assert_eq!(code, 1, "refused: {out} {err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    (out, err)
}

#[test]
fn exposed_identity_and_short_jwt_secrets_are_refused_before_anything_is_printed() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let (out, err) = refused_start(&data, "127.0.0.1:0", &["--jwt-secret", "too-short"]);
    assert!(err.contains("--jwt-secret"), "{err}");
    assert!(!out.contains("token"), "no token printed: {out}");
    assert!(
        !data.join("identity.json").exists(),
        "nothing created for a refused start"
    );
    // A taken HTTP port is reported before any token is generated.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (out, err) = refused_start(&data, &addr, &[]);
    assert!(err.contains("cannot listen on --http"), "{err}");
    assert!(!out.contains("token"), "no token printed: {out}");
    assert!(!data.join("identity.json").exists());
    drop(taken);

    let (code, _, err) = flashsale(
        &["credentials", "show", "--data-dir", data.to_str().unwrap()],
        &[],
    );
    assert_eq!(code, 1);
    assert!(err.starts_with("error: no identity in "), "{err}");

    // Create it, then expose it to other users.
    let server = Server::start_in(tmp.path(), &[], false);
    assert!(server.stop().success());
    let file = data.join("identity.json");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (_, err) = refused_start(&data, "127.0.0.1:0", &[]);
    assert!(err.contains("chmod 600"), "{err}");
}
