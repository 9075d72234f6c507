//! docs/openapi.yaml and the router agree: every route served is documented with its method,
//! every documented operation is served, and every problem type the API emits is documented.

#![allow(clippy::expect_used)]

use std::collections::BTreeSet;

use flashsale_gateway::http::problem::{ALL_KINDS, TYPE_BASE};
use flashsale_gateway::http::routes::ROUTES;

const METHODS: &[&str] = &["get", "put", "post", "delete", "patch", "head", "options"];

fn document() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.yaml");
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

/// `(METHOD, path)` of every operation under the top-level `paths:` key. The document keeps
/// paths at two spaces of indentation and methods at four, as YAML written by hand does.
fn documented_operations(doc: &str) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    let mut in_paths = false;
    let mut current: Option<String> = None;
    for line in doc.lines() {
        if !line.starts_with(' ') && !line.trim().is_empty() {
            in_paths = line.trim_end() == "paths:";
            current = None;
            continue;
        }
        if !in_paths {
            continue;
        }
        if let Some(rest) = line.strip_prefix("  ") {
            if !rest.starts_with(' ') {
                if let Some(p) = rest.trim_end().strip_suffix(':') {
                    assert!(p.starts_with('/'), "unexpected key under paths: {p}");
                    current = Some(p.to_owned());
                }
                continue;
            }
        }
        if let Some(rest) = line.strip_prefix("    ") {
            if !rest.starts_with(' ') {
                let key = rest.trim_end().trim_end_matches(':');
                if METHODS.contains(&key) {
                    let path = current.clone().expect("method outside a path");
                    ops.insert((key.to_uppercase(), path));
                }
            }
        }
    }
    ops
}

#[test]
fn every_route_is_documented_and_vice_versa() {
    let doc = document();
    let documented = documented_operations(&doc);
    let served: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|r| (r.method.to_owned(), r.path.to_owned()))
        .collect();
    assert_eq!(served.len(), ROUTES.len(), "duplicate routes in the table");
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let unserved: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty(),
        "served but not in docs/openapi.yaml: {undocumented:?}"
    );
    assert!(
        unserved.is_empty(),
        "in docs/openapi.yaml but not served: {unserved:?}"
    );
}

#[test]
fn every_problem_type_is_documented() {
    let doc = document();
    for kind in ALL_KINDS {
        let uri = format!("{TYPE_BASE}{}", kind.suffix());
        assert!(doc.contains(&uri), "{uri} is not in docs/openapi.yaml");
        let status = format!("'{}'", kind.status().as_u16());
        assert!(
            doc.contains(&status) || kind.status().as_u16() == 405 || kind.status().as_u16() == 500,
            "status {status} of {kind:?} is never documented as a response"
        );
    }
}

#[test]
fn the_parser_reads_what_it_should() {
    let doc = "openapi: 3.1.0\npaths:\n  /a/{x}:\n    parameters: []\n    get:\n      responses: {}\n    post:\n      x: 1\n  /b:\n    put:\n      y: 2\ncomponents:\n  /not-a-path:\n    get: {}\n";
    let ops = documented_operations(doc);
    let want: BTreeSet<(String, String)> = [("GET", "/a/{x}"), ("POST", "/a/{x}"), ("PUT", "/b")]
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(ops, want);
}
