//! The admin CLI (`flashsale sku|reservation|order`) against a real server: tables for people,
//! the API's JSON with `--json`, and every problem as one line on stderr with exit code 1.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::Value;
use support::{flashsale, Api, Server, ADMIN, PARTNER, SHOP};

/// Runs `flashsale args… --server <server>` with `token` in FLASHSALE_TOKEN.
fn cli(server: &Server, token: &str, args: &[&str]) -> (i32, String, String) {
    let url = server.url("");
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--server", &url]);
    flashsale(&all, &[("FLASHSALE_TOKEN", token)])
}

/// Asserts a failed command: exit code 1, nothing on stdout, one line on stderr containing
/// `needle`.
fn assert_problem((code, out, err): (i32, String, String), needle: &str) {
    assert_eq!(code, 1, "stdout {out:?} stderr {err:?}");
    assert!(out.is_empty(), "{out}");
    assert_eq!(err.lines().count(), 1, "one line: {err:?}");
    assert!(err.starts_with("error: "), "{err}");
    assert!(err.contains(needle), "{needle:?} in {err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skus_are_managed_from_the_command_line() {
    let server = Server::start(&[]);
    let (code, out, err) = cli(
        &server,
        ADMIN,
        &[
            "sku",
            "put",
            "tee",
            "--name",
            "Tee shirt",
            "--price-cents",
            "1999",
            "--stock",
            "100",
            "--per-buyer-limit",
            "2",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("created SKU tee\n"), "{out}");
    assert!(out.contains("available:         100"), "{out}");
    assert!(out.contains("per_buyer_limit:   2"), "{out}");

    // --json prints the API's JSON; a second put is an update.
    let (code, out, _) = cli(
        &server,
        ADMIN,
        &[
            "sku",
            "put",
            "mug",
            "--name",
            "Mug",
            "--price-cents",
            "899",
            "--stock",
            "5",
            "--sale-ends-at",
            "2099-01-01T00:00:00Z",
            "--json",
        ],
    );
    assert_eq!(code, 0);
    let mug: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(mug["sku"], "mug");
    assert_eq!(mug["sale_ends_at"], "2099-01-01T00:00:00.000Z");
    let (code, out, _) = cli(
        &server,
        ADMIN,
        &[
            "sku",
            "put",
            "mug",
            "--name",
            "Mug",
            "--price-cents",
            "899",
            "--stock",
            "6",
        ],
    );
    assert_eq!(code, 0);
    assert!(out.starts_with("updated SKU mug\n"), "{out}");

    let (code, out, _) = cli(&server, ADMIN, &["sku", "restock", "tee", "5"]);
    assert_eq!(code, 0);
    assert!(out.contains("total:             105"), "{out}");

    // get and list work with any token, including a partner's.
    let (code, out, _) = cli(&server, PARTNER, &["sku", "get", "tee", "--json"]);
    assert_eq!(code, 0);
    let tee: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (tee["total"].as_u64(), tee["available"].as_u64()),
        (Some(105), Some(105))
    );
    let (code, out, _) = cli(&server, PARTNER, &["sku", "list"]);
    assert_eq!(code, 0);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines[0].starts_with("SKU  NAME"), "{out}");
    // The second put replaced the settings: no sale end any more.
    assert!(
        lines[1].starts_with("mug ") && lines[1].ends_with("open"),
        "{out}"
    );
    assert!(
        lines[2].starts_with("tee ") && lines[2].contains("Tee shirt"),
        "{out}"
    );
    // Paging: one at a time, then from the cursor.
    let (_, out, _) = cli(&server, PARTNER, &["sku", "list", "--limit", "1", "--json"]);
    let page: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let (_, out, _) = cli(
        &server,
        PARTNER,
        &["sku", "list", "--cursor", &cursor, "--json"],
    );
    let rest: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(rest["items"][0]["sku"], "tee");
    assert!(rest["next_cursor"].is_null());

    // Problems: one line, exit code 1.
    assert_problem(
        cli(&server, ADMIN, &["sku", "get", "nosuch"]),
        "404 not-found",
    );
    assert_problem(
        cli(&server, SHOP, &["sku", "restock", "tee", "1"]),
        "403 forbidden: this endpoint needs an admin token",
    );
    assert_problem(
        cli(&server, "wrong-token", &["sku", "list"]),
        "401 unauthenticated",
    );
    assert_problem(
        cli(
            &server,
            ADMIN,
            &[
                "sku",
                "put",
                "x",
                "--name",
                "x",
                "--price-cents",
                "1",
                "--stock",
                "1",
                "--sale-starts-at",
                "soon",
            ],
        ),
        "422 invalid",
    );
    assert_problem(
        flashsale(&["sku", "list", "--server", &server.url("")], &[]),
        "no token",
    );
    assert_problem(
        flashsale(
            &[
                "sku",
                "list",
                "--server",
                "http://127.0.0.1:9",
                "--token",
                ADMIN,
            ],
            &[],
        ),
        "cannot reach http://127.0.0.1:9",
    );
    assert!(server.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reservations_and_orders_are_shown_and_cancelled() {
    let server = Server::start(&[]);
    let api = Api::new(&server);
    api.put_sku(
        "tee",
        serde_json::json!({"name": "Tee", "price_cents": 1500, "stock": 10}),
    )
    .await;
    let held = api.reserve("alice", "tee", 2).await;
    let id = held.body["id"].as_str().unwrap().to_owned();

    let (code, out, err) = cli(&server, SHOP, &["reservation", "get", &id]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("status:         held"), "{out}");
    assert!(out.contains("buyer:          alice"), "{out}");
    assert!(out.contains("total_cents:    3000"), "{out}");
    assert!(out.contains("tee    2              1500"), "{out}");

    let (code, out, _) = cli(&server, SHOP, &["reservation", "cancel", &id, "--json"]);
    assert_eq!(code, 0);
    let released: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(released["status"], "released");
    assert_eq!(api.counts("tee").await, (10, 0, 0));
    assert_problem(
        cli(&server, PARTNER, &["reservation", "get", &id]),
        "403 forbidden",
    );

    let held = api.reserve("bob", "tee", 1).await;
    let id = held.body["id"].as_str().unwrap().to_owned();
    let confirmed = api
        .send(
            "POST",
            &format!("/v1/reservations/{id}/confirm"),
            Some(SHOP),
            Some(serde_json::json!({"payment_ref": "pay_42"})),
        )
        .await;
    let order = confirmed.body["order_id"].as_str().unwrap().to_owned();
    assert_problem(
        cli(&server, SHOP, &["reservation", "cancel", &id]),
        "409 invalid-state",
    );
    let (code, out, _) = cli(&server, ADMIN, &["order", "get", &order]);
    assert_eq!(code, 0);
    assert!(out.contains("payment_ref:    pay_42"), "{out}");
    assert!(out.contains(&format!("reservation_id: {id}")), "{out}");
    let (_, out, _) = cli(&server, SHOP, &["order", "get", &order, "--json"]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["buyer"], "bob");
    assert_problem(
        cli(&server, SHOP, &["order", "get", "ord_nosuch"]),
        "\"ord_nosuch\" is not an order id",
    );
    assert_problem(
        cli(&server, SHOP, &["order", "get", "ord_00000000000000ff"]),
        "404 not-found",
    );
    assert!(server.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buyer_lists_holds_and_several_servers_from_the_command_line() {
    let server = Server::start(&[]);
    let api = Api::new(&server);
    // sku put sets the hold limits.
    let (code, out, err) = cli(
        &server,
        ADMIN,
        &[
            "sku",
            "put",
            "tee",
            "--name",
            "Tee",
            "--price-cents",
            "100",
            "--stock",
            "10",
            "--reservation-ttl-s",
            "60",
            "--max-hold-s",
            "600",
            "--max-extensions",
            "1",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("max_hold_s:        600"), "{out}");
    assert!(out.contains("max_extensions:    1"), "{out}");
    let first = api.reserve("ann", "tee", 1).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let second = api.reserve("ann", "tee", 2).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    api.reserve("bob", "tee", 1).await;

    // reservation extend: once, then past max_extensions is 422 naming the limit.
    let (code, out, err) = cli(
        &server,
        SHOP,
        &["reservation", "extend", &first, "--ttl-s", "300"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with(&format!("extended reservation {first} until ")),
        "{out}"
    );
    assert!(out.contains("extensions:     1"), "{out}");
    assert_problem(
        cli(
            &server,
            SHOP,
            &["reservation", "extend", &first, "--ttl-s", "300"],
        ),
        "422 invalid",
    );
    assert_problem(
        cli(
            &server,
            SHOP,
            &["reservation", "extend", "res_x", "--ttl-s", "5"],
        ),
        "not a reservation id",
    );

    // reservation list: newest first, filters, a limit with a hint to continue.
    let (code, out, err) = cli(&server, SHOP, &["reservation", "list", "--buyer", "ann"]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(
        lines[0].starts_with("ID ") && lines[0].contains("STATUS"),
        "{out}"
    );
    assert!(
        lines[1].starts_with(&second) && lines[1].contains("tee×2"),
        "{out}"
    );
    assert!(lines[2].starts_with(&first), "{out}");
    let (_, out, _) = cli(
        &server,
        SHOP,
        &["reservation", "list", "--buyer", "ann", "--limit", "1"],
    );
    let more = out.lines().last().unwrap();
    assert!(
        more.starts_with("more: flashsale reservation list --buyer ann --cursor "),
        "{out}"
    );
    let cursor = more.rsplit(' ').next().unwrap();
    let (_, out, _) = cli(
        &server,
        SHOP,
        &[
            "reservation",
            "list",
            "--buyer",
            "ann",
            "--cursor",
            cursor,
            "--json",
        ],
    );
    let page: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(page["items"][0]["id"], first.as_str());
    assert!(page["next_cursor"].is_null(), "{out}");
    api.send(
        "POST",
        &format!("/v1/reservations/{second}/confirm"),
        Some(SHOP),
        Some(serde_json::json!({"payment_ref": "pay_7"})),
    )
    .await;
    let (_, out, _) = cli(
        &server,
        SHOP,
        &[
            "reservation",
            "list",
            "--buyer",
            "ann",
            "--status",
            "confirmed",
            "--sku",
            "tee",
            "--json",
        ],
    );
    let page: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 1, "{out}");
    assert_eq!(page["items"][0]["status"], "confirmed");

    // order list.
    let (code, out, err) = cli(&server, SHOP, &["order", "list", "--buyer", "ann"]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[1].contains("pay_7") && lines[1].contains("tee×2"),
        "{out}"
    );
    let (_, out, _) = cli(&server, SHOP, &["order", "list", "--buyer", "nobody"]);
    assert_eq!(out, "no orders\n");
    assert_problem(cli(&server, SHOP, &["order", "list"]), "buyer");

    // Several servers: a dead one is skipped (nothing was sent to it).
    let dead = "http://127.0.0.1:9";
    let url = server.url("");
    let (code, out, err) = flashsale(
        &["sku", "get", "tee", "--server", &format!("{dead},{url}")],
        &[("FLASHSALE_TOKEN", PARTNER)],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("sku:               tee"), "{out}");
    let (code, _, err) = flashsale(
        &[
            "reservation",
            "list",
            "--buyer",
            "bob",
            "--server",
            dead,
            "--server",
            &url,
        ],
        &[("FLASHSALE_TOKEN", SHOP)],
    );
    assert_eq!(code, 0, "{err}");
    assert!(server.stop().success());
}

#[test]
fn help_describes_every_contract_flag() {
    let help = |args: &[&str]| {
        let (code, out, err) = flashsale(args, &[]);
        assert_eq!(code, 0, "{err}");
        out
    };
    let put = help(&["sku", "put", "--help"]);
    for flag in [
        "--name",
        "--price-cents",
        "--stock",
        "--per-buyer-limit",
        "--sale-starts-at",
        "--sale-ends-at",
        "--reservation-ttl-s",
        "--max-hold-s",
        "--max-extensions",
        "--server",
        "--token",
        "--json",
    ] {
        assert!(put.contains(flag), "sku put --help lacks {flag}");
    }
    assert!(put.contains("http://127.0.0.1:8080") && put.contains("FLASHSALE_TOKEN"));
    for args in [
        &["sku", "get", "--help"][..],
        &["sku", "list", "--help"],
        &["sku", "restock", "--help"],
        &["reservation", "get", "--help"],
        &["reservation", "list", "--help"],
        &["reservation", "extend", "--help"],
        &["reservation", "cancel", "--help"],
        &["order", "get", "--help"],
        &["order", "list", "--help"],
    ] {
        let text = help(args);
        assert!(
            text.contains("--server") && text.contains("--token") && text.contains("--json"),
            "{args:?}: {text}"
        );
    }
    // A usage mistake is a problem like any other: one line, exit code 1.
    let (code, out, err) = flashsale(&["sku", "put", "tee", "--price-cents", "1"], &[]);
    assert_eq!((code, out.as_str()), (1, ""));
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("error: ") && err.contains("--name"),
        "{err}"
    );
    let (code, _, err) = flashsale(&["sku", "restock", "tee", "many"], &[]);
    assert_eq!(code, 1);
    assert!(err.contains("invalid value 'many'") && err.trim_end().ends_with("(see --help)"));
    let creds = help(&["credentials", "show", "--help"]);
    assert!(creds.contains("--data-dir") && creds.contains("--only"));
    let watch = help(&["watch", "--help"]);
    assert!(
        !watch.contains("per request"),
        "watch --help says nothing about request logging"
    );
}

/// The quinn-proto stream loop runs on one thread (ADR 0046): asking for it with several stream
/// threads is refused at start, before anything is bound or replayed, instead of quietly
/// running one thread.
#[test]
fn serve_refuses_the_stream_loop_on_several_threads() {
    let (code, out, err) = flashsale(
        &[
            "serve",
            "--stream-driver",
            "proto",
            "--stream-threads",
            "2",
            "--data-dir",
            "/nonexistent",
        ],
        &[],
    );
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("--stream-driver"), "{err}");
    assert!(err.contains("one thread, not 2"), "{err}");
    assert!(out.is_empty(), "no token or banner printed: {out}");
}

#[test]
fn every_flag_states_its_default_once() {
    // Issue 13: `--stream-threads` printed its default twice (in its doc and from clap).
    let help = |args: &[&str]| {
        let (code, out, err) = flashsale(args, &[]);
        assert_eq!(code, 0, "{args:?}: {err}");
        out
    };
    for args in [
        &["serve", "--help"][..],
        &["watch", "--help"],
        &["credentials", "show", "--help"],
        &["sku", "list", "--help"],
    ] {
        let text = help(args);
        // Each flag's block runs from its `  -…` line to the next one.
        let mut blocks: Vec<String> = Vec::new();
        for line in text.lines() {
            if line.trim_start().starts_with('-') || blocks.is_empty() {
                blocks.push(String::new());
            }
            if let Some(b) = blocks.last_mut() {
                b.push_str(line);
                b.push('\n');
            }
        }
        assert!(blocks.len() > 3, "{args:?}: {text}");
        for block in blocks {
            let defaults = block.matches("[default").count();
            assert!(
                defaults <= 1,
                "{args:?}: a default stated {defaults} times in:\n{block}"
            );
        }
        assert!(
            text.contains("--metrics-top-skus") || args[0] != "serve",
            "{text}"
        );
    }
}
