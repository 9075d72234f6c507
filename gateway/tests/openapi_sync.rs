//! docs/openapi.yaml and the router agree: every route served is documented with its method,
//! every documented operation is served, and every problem type the API emits is documented.

#![allow(clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};

use flashsale_gateway::http::problem::{ALL_KINDS, TYPE_BASE};
use flashsale_gateway::http::routes::ROUTES;

const METHODS: &[&str] = &["get", "put", "post", "delete", "patch", "head", "options"];

fn document() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.yaml");
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

/// `(METHOD, path)` of every operation under the top-level `paths:` key, with the status codes
/// of its responses. The document keeps paths at two spaces of indentation, methods at four,
/// `responses:` at six and status codes at eight, as YAML written by hand does.
fn documented_operations(doc: &str) -> BTreeMap<(String, String), BTreeSet<String>> {
    let mut ops = BTreeMap::new();
    let mut in_paths = false;
    let mut path: Option<String> = None;
    let mut op: Option<(String, String)> = None;
    let mut in_responses = false;
    for line in doc.lines() {
        if !line.starts_with(' ') && !line.trim().is_empty() {
            in_paths = line.trim_end() == "paths:";
            (path, op) = (None, None);
            continue;
        }
        if !in_paths {
            continue;
        }
        match indented(line) {
            Some((2, key)) => {
                let p = key.strip_suffix(':').unwrap_or(key);
                assert!(p.starts_with('/'), "unexpected key under paths: {p}");
                (path, op) = (Some(p.to_owned()), None);
            }
            Some((4, key)) => {
                let key = key.trim_end_matches(':');
                op = None;
                if METHODS.contains(&key) {
                    let p = path.clone().expect("method outside a path");
                    let id = (key.to_uppercase(), p);
                    ops.insert(id.clone(), BTreeSet::new());
                    op = Some(id);
                }
            }
            Some((6, key)) => in_responses = key.trim_end() == "responses:",
            Some((8, key)) if in_responses => {
                if let (Some(id), Some(code)) = (&op, key.strip_prefix('\'')) {
                    if let Some((code, _)) = code.split_once('\'') {
                        ops.entry(id.clone()).or_default().insert(code.to_owned());
                    }
                }
            }
            _ => {}
        }
    }
    ops
}

/// The indentation of a non-blank line and the rest of it.
fn indented(line: &str) -> Option<(usize, &str)> {
    let rest = line.trim_start_matches(' ');
    (!rest.is_empty()).then(|| (line.len() - rest.len(), rest))
}

/// The problem `type` URIs the document lists (the `Problem` schema's `enum`).
fn documented_problem_types(doc: &str) -> BTreeSet<String> {
    doc.lines()
        .filter_map(|l| l.trim().strip_prefix("- "))
        .filter(|uri| uri.starts_with(TYPE_BASE))
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_route_is_documented_and_vice_versa() {
    let doc = document();
    let documented: BTreeSet<(String, String)> = documented_operations(&doc).into_keys().collect();
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
    let emitted: BTreeSet<String> = ALL_KINDS.iter().map(|k| k.type_uri()).collect();
    let listed = documented_problem_types(&doc);
    let missing: Vec<_> = emitted.difference(&listed).collect();
    let unknown: Vec<_> = listed.difference(&emitted).collect();
    assert!(
        missing.is_empty(),
        "problem types missing from docs/openapi.yaml: {missing:?}"
    );
    assert!(
        unknown.is_empty(),
        "docs/openapi.yaml lists types never emitted: {unknown:?}"
    );
    let codes: BTreeSet<String> = documented_operations(&doc)
        .into_values()
        .flatten()
        .collect();
    for kind in ALL_KINDS {
        let status = kind.status_code();
        // 405 answers methods the document does not list, so no operation documents it.
        assert!(
            codes.contains(&status.to_string()) || status == 405,
            "status {status} of {kind:?} is never documented as a response"
        );
    }
}

#[test]
fn every_v1_operation_documents_internal_errors() {
    for ((method, path), codes) in documented_operations(&document()) {
        if path.starts_with("/v1/") {
            assert!(
                codes.contains("500"),
                "{method} {path} does not document 500"
            );
        }
    }
}

#[test]
fn reserve_documents_idempotency_in_progress_with_retry_after() {
    let doc = document();
    let ops = documented_operations(&doc);
    let codes = &ops[&("POST".to_owned(), "/v1/reservations".to_owned())];
    assert!(codes.contains("409"), "{codes:?}");
    // The `ReserveConflict` response: its line and the more indented lines below it.
    let conflict: String = doc
        .lines()
        .skip_while(|l| *l != "    ReserveConflict:")
        .enumerate()
        .take_while(|(i, l)| *i == 0 || indented(l).is_none_or(|(n, _)| n > 4))
        .map(|(_, l)| format!("{l}\n"))
        .collect();
    assert!(
        conflict.contains("headers:"),
        "no ReserveConflict block: {conflict}"
    );
    for needle in [
        "idempotency-in-progress",
        "Retry-After",
        "idempotency-mismatch",
        "sold-out",
    ] {
        assert!(
            conflict.contains(needle),
            "ReserveConflict lacks {needle}: {conflict}"
        );
    }
    assert!(doc.contains("'409': { $ref: '#/components/responses/ReserveConflict' }"));
}

#[test]
fn the_parser_reads_what_it_should() {
    let doc = "openapi: 3.1.0\npaths:\n  /a/{x}:\n    parameters: []\n    get:\n      responses:\n        '200': {}\n        '404': { $ref: x }\n      requestBody:\n        '500': {}\n    post:\n      x: 1\n  /b:\n    put:\n      y: 2\ncomponents:\n  /not-a-path:\n    get: {}\n";
    let ops = documented_operations(doc);
    let want: BTreeSet<(String, String)> = [("GET", "/a/{x}"), ("POST", "/a/{x}"), ("PUT", "/b")]
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(ops.keys().cloned().collect::<BTreeSet<_>>(), want);
    let get = &ops[&("GET".to_owned(), "/a/{x}".to_owned())];
    assert_eq!(get.iter().collect::<Vec<_>>(), ["200", "404"]);
}

/// The keys under the top-level `webhooks:` key (two spaces of indentation).
fn documented_webhooks(doc: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut inside = false;
    for line in doc.lines() {
        if !line.starts_with(' ') && !line.trim().is_empty() {
            inside = line.trim_end() == "webhooks:";
            continue;
        }
        if let (true, Some((2, key))) = (inside, indented(line)) {
            out.insert(key.strip_suffix(':').unwrap_or(key).to_owned());
        }
    }
    out
}

#[test]
fn every_event_type_is_a_documented_webhook_and_vice_versa() {
    let doc = document();
    let documented = documented_webhooks(&doc);
    let emitted: BTreeSet<String> = flashsale_events::EventType::ALL
        .iter()
        .map(|t| t.as_str().to_owned())
        .collect();
    assert_eq!(documented, emitted, "webhooks: in docs/openapi.yaml");
}
