//! Paging of list endpoints: `limit` (bounded) and a `cursor`, the id of the last item of the
//! previous page; anything else in the query is refused.

use flashsale_protocol::SkuId;

use crate::http::problem::Problem;

/// Default page size of `GET /v1/skus`.
pub const DEFAULT_PAGE_LIMIT: usize = 100;
/// Largest page size of `GET /v1/skus`.
pub const MAX_PAGE_LIMIT: usize = 1000;

/// The cursor for "the SKUs after this one": the SKU id itself. Every SKU id is a valid
/// cursor, whether or not that SKU exists, so docs/openapi.yaml can say exactly which cursors
/// are accepted (`[A-Za-z0-9._-]{1,64}`), and a page boundary survives the SKU's removal.
pub fn encode_cursor(sku: &SkuId) -> String {
    sku.as_str().to_owned()
}

/// The SKU id a cursor names (400 if it is not a SKU id).
pub fn decode_cursor(cursor: &str) -> Result<SkuId, Problem> {
    SkuId::new(cursor).map_err(|e| {
        Problem::malformed(format!(
            "cursor must be the next_cursor of a previous page (a SKU id): {e}"
        ))
    })
}

/// Parses `limit` and `cursor` of `GET /v1/skus`; other parameters are refused (400).
pub fn parse_list_query(query: Option<&str>) -> Result<(Option<SkuId>, usize), Problem> {
    let mut after = None;
    let mut limit = DEFAULT_PAGE_LIMIT;
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "limit" => {
                let n: usize = v
                    .parse()
                    .map_err(|_| Problem::malformed(format!("limit: {v:?} is not a number")))?;
                if !(1..=MAX_PAGE_LIMIT).contains(&n) {
                    return Err(Problem::invalid(format!(
                        "limit must be 1..={MAX_PAGE_LIMIT}"
                    )));
                }
                limit = n;
            }
            "cursor" => {
                if !v.is_empty() {
                    after = Some(decode_cursor(v)?);
                }
            }
            other => {
                return Err(Problem::malformed(format!(
                    "unknown query parameter {other:?}; expected limit, cursor"
                )))
            }
        }
    }
    Ok((after, limit))
}
