//! docs/grafana/flashsale.json queries only metrics that exist: every `flashsale_*` and
//! `process_*` name in the dashboard appears in the `/metrics` answer of a real `flashsale
//! serve` that has served some traffic. Also checks the per-SKU stock series and their bound
//! (`--metrics-top-skus`), the build info and the process metrics on that real server.

mod support;

use std::collections::BTreeSet;

use serde_json::{json, Value};
use support::{Api, Server, ADMIN};

/// Every metric name (`flashsale_…` or `process_…`) in the strings of `v`.
fn metric_names(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::String(s) => {
            let bytes = s.as_bytes();
            let is_name = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b':';
            let mut i = 0;
            while i < bytes.len() {
                let starts = (i == 0 || !is_name(bytes[i - 1]))
                    && (s[i..].starts_with("flashsale_") || s[i..].starts_with("process_"));
                if starts {
                    let end = (i..bytes.len())
                        .find(|&j| !is_name(bytes[j]))
                        .unwrap_or(bytes.len());
                    out.insert(s[i..end].to_owned());
                    i = end;
                } else {
                    i += 1;
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| metric_names(v, out)),
        Value::Object(o) => o.values().for_each(|v| metric_names(v, out)),
        _ => {}
    }
}

/// The metric names with at least one sample in a Prometheus text answer.
fn sampled_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_grafana_dashboard_queries_exists() {
    let server = Server::start(&["--rate-limit-buyer-rps", "0", "--metrics-top-skus", "2"]);
    let api = Api::new(&server);
    for (sku, stock) in [("hot", 10), ("warm", 10), ("cold", 10)] {
        api.put_sku(
            sku,
            json!({"name": "Tee", "price_cents": 1500, "stock": stock}),
        )
        .await;
    }
    for (buyer, sku, qty) in [("a", "hot", 6), ("b", "warm", 2), ("c", "hot", 5)] {
        let r = api.reserve(buyer, sku, qty).await;
        assert!(
            r.status == 201 || r.status == 409,
            "{} {}",
            r.status,
            r.body
        );
    }
    let res = api.http.get(server.url("/metrics")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    let sampled = sampled_names(&text);

    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/grafana/flashsale.json"
    );
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut queried = BTreeSet::new();
    metric_names(&doc, &mut queried);
    assert!(
        queried.len() >= 15,
        "too few metrics found in {path}: {queried:?}"
    );
    let missing: Vec<&String> = queried.difference(&sampled).collect();
    assert!(
        missing.is_empty(),
        "{path} queries metrics /metrics lacks: {missing:?}\n{text}"
    );

    // The busiest two SKUs by name, the third summed; the totals agree with the API.
    let line = |l: &str| assert!(text.lines().any(|x| x == l), "missing {l}\n{text}");
    line("flashsale_skus 3");
    line("flashsale_sku_stock_units{sku=\"hot\",state=\"reserved\"} 6");
    line("flashsale_sku_stock_units{sku=\"warm\",state=\"reserved\"} 2");
    line("flashsale_sku_stock_other_units{state=\"available\"} 10");
    let (available, reserved, _) = api.counts("hot").await;
    line(&format!(
        "flashsale_sku_stock_units{{sku=\"hot\",state=\"available\"}} {available}"
    ));
    assert_eq!(reserved, 6);
    assert!(!text.contains("sku=\"cold\""), "{text}");
    line("flashsale_stock_units{state=\"reserved\"} 8");
    assert!(text.contains(&format!(
        "flashsale_build_info{{version=\"{}\"",
        env!("CARGO_PKG_VERSION")
    )));
    for name in [
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_cpu_seconds_total",
    ] {
        assert!(sampled.contains(name), "{name}");
    }
    // Durations are in seconds, as Prometheus names them.
    for l in text.lines().filter(|l| l.starts_with("# TYPE ")) {
        let name = l.split(' ').nth(2).unwrap_or_default();
        assert!(!name.ends_with("_us") && !name.contains("_us_"), "{l}");
        assert!(!name.ends_with("_ms") && !name.contains("_micros"), "{l}");
    }
    let r = api.get("/v1/skus", ADMIN).await;
    assert_eq!(r.body["items"].as_array().map(Vec::len), Some(3));
}
