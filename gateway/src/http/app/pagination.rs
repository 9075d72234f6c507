//! Paging of list endpoints: `limit` (bounded) and an opaque `cursor` naming the last item of
//! the previous page; anything else in the query is refused.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use flashsale_protocol::SkuId;

use crate::http::problem::Problem;

/// Default page size of `GET /v1/skus`.
pub const DEFAULT_PAGE_LIMIT: usize = 100;
/// Largest page size of `GET /v1/skus`.
pub const MAX_PAGE_LIMIT: usize = 1000;

/// The opaque cursor for "after this SKU".
pub fn encode_cursor(sku: &SkuId) -> String {
    URL_SAFE_NO_PAD.encode(sku.as_str())
}

/// Decodes a cursor made by [`encode_cursor`].
pub fn decode_cursor(cursor: &str) -> Result<SkuId, Problem> {
    let bad = || Problem::malformed("cursor is not one this server issued");
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
    let s = String::from_utf8(bytes).map_err(|_| bad())?;
    SkuId::new(s).map_err(|_| bad())
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
