//! How the admin commands print for people: aligned tables and `field: value` lists. Scripts
//! use `--json` instead (the API's JSON, unchanged).

use serde_json::Value;

/// A column of a [`table`].
#[derive(Debug, Clone, Copy)]
pub struct Column {
    /// Heading (upper case by convention).
    pub heading: &'static str,
    /// Right-aligned (numbers) or left-aligned (text).
    pub right: bool,
}

/// A text column.
pub const fn text(heading: &'static str) -> Column {
    Column {
        heading,
        right: false,
    }
}

/// A number column.
pub const fn number(heading: &'static str) -> Column {
    Column {
        heading,
        right: true,
    }
}

/// Renders `rows` under `columns`, each column as wide as its widest cell, two spaces apart;
/// no trailing spaces.
pub fn table(columns: &[Column], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = columns.iter().map(|c| c.heading.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let headings: Vec<String> = columns.iter().map(|c| c.heading.to_string()).collect();
    for row in std::iter::once(&headings).chain(rows) {
        let mut line = String::new();
        for ((column, width), cell) in columns.iter().zip(&widths).zip(row) {
            if !line.is_empty() {
                line.push_str("  ");
            }
            let pad = width.saturating_sub(cell.chars().count());
            if column.right {
                line.push_str(&" ".repeat(pad));
                line.push_str(cell);
            } else {
                line.push_str(cell);
                line.push_str(&" ".repeat(pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Renders `name: value` lines with the values aligned.
pub fn fields(pairs: &[(&str, String)]) -> String {
    let width = pairs
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for (k, v) in pairs {
        let pad = width.saturating_sub(k.chars().count());
        out.push_str(&format!("{k}:{} {v}\n", " ".repeat(pad)));
    }
    out
}

/// A JSON value for a cell: strings as they are, numbers as digits, null as `-`.
pub fn cell(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "-".into(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// An optional value as a cell: `-` when absent.
pub fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "-".into(), |v| v.to_string())
}

/// `field` of `object` as a cell.
pub fn get(object: &Value, field: &str) -> String {
    cell(object.get(field))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_text_left_and_numbers_right() {
        let t = table(
            &[text("SKU"), number("AVAILABLE")],
            &[
                vec!["tee".into(), "5".into()],
                vec!["mug-large".into(), "120".into()],
            ],
        );
        assert_eq!(
            t,
            "SKU        AVAILABLE\ntee                5\nmug-large        120\n"
        );
    }

    #[test]
    fn fields_are_aligned_and_nulls_are_dashes() {
        let v = serde_json::json!({"a": null, "b": 3, "c": "x"});
        let f = fields(&[
            ("a", get(&v, "a")),
            ("bbb", get(&v, "b")),
            ("c", get(&v, "c")),
        ]);
        assert_eq!(f, "a:   -\nbbb: 3\nc:   x\n");
    }
}
