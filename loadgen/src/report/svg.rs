//! A tiny inline-SVG line chart (no dependencies), used by the HTML report.

use std::fmt::Write;

/// One line of a chart.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend label.
    pub name: String,
    /// CSS colour.
    pub color: &'static str,
    /// Points `(x, y)`; y must be > 0 on a log axis (others are clamped).
    pub points: Vec<(f64, f64)>,
}

/// A line chart.
#[derive(Debug, Clone)]
pub struct Chart {
    /// Title above the plot.
    pub title: String,
    /// X axis label.
    pub x_label: String,
    /// Y axis label.
    pub y_label: String,
    /// Logarithmic y axis.
    pub y_log: bool,
    /// X tick positions and labels (empty = automatic).
    pub x_ticks: Vec<(f64, String)>,
    /// Formats y tick values.
    pub y_fmt: fn(f64) -> String,
    /// The lines.
    pub series: Vec<Series>,
}

/// Escapes text for HTML / SVG content and attributes.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const W: f64 = 760.0;
const H: f64 = 316.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 46.0;
const BOTTOM: f64 = 45.0;

fn nice_ticks(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    if hi <= lo {
        return vec![lo];
    }
    let raw = (hi - lo) / n as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let mut t = (lo / step).ceil() * step;
    let mut out = Vec::new();
    while t <= hi + step * 1e-9 && out.len() < 50 {
        out.push(t);
        t += step;
    }
    out
}

impl Chart {
    /// Renders the chart as an `<svg>` element.
    pub fn render(&self) -> String {
        let pts = self.series.iter().flat_map(|s| s.points.iter());
        let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        for &(x, y) in pts {
            x0 = x0.min(x);
            x1 = x1.max(x);
            y0 = y0.min(y);
            y1 = y1.max(y);
        }
        let mut out = String::new();
        let _ = write!(
            out,
            r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img"><title>{t}</title><text x="{cx}" y="18" text-anchor="middle" class="title">{t}</text>"#,
            t = escape(&self.title),
            cx = W / 2.0
        );
        if x0 > x1 {
            let _ = write!(
                out,
                r#"<text x="{}" y="{}" text-anchor="middle">no data</text></svg>"#,
                W / 2.0,
                H / 2.0
            );
            return out;
        }
        if x1 <= x0 {
            x1 = x0 + 1.0;
        }
        let ymap: Box<dyn Fn(f64) -> f64> = if self.y_log {
            let lo = y0.max(1.0).log10().floor();
            let hi = y1.max(10.0).log10().ceil().max(lo + 1.0);
            (y0, y1) = (lo, hi);
            Box::new(move |v: f64| v.max(1.0).log10())
        } else {
            y0 = 0.0;
            if y1 <= 0.0 {
                y1 = 1.0;
            }
            y1 *= 1.05;
            Box::new(|v: f64| v)
        };
        let pw = W - LEFT - RIGHT;
        let ph = H - TOP - BOTTOM;
        let sx = |x: f64| LEFT + (x - x0) / (x1 - x0) * pw;
        let sy = |v: f64| TOP + ph - (ymap(v) - y0) / (y1 - y0) * ph;
        // Axes and grid.
        let _ = write!(
            out,
            r##"<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>"##
        );
        let y_ticks: Vec<f64> = if self.y_log {
            (y0 as i64..=y1 as i64)
                .map(|e| 10f64.powi(e as i32))
                .collect()
        } else {
            nice_ticks(0.0, y1, 5)
        };
        for v in y_ticks {
            let y = sy(v);
            let _ = write!(
                out,
                r##"<line x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end" class="tick">{}</text>"##,
                LEFT + pw,
                LEFT - 6.0,
                y + 4.0,
                escape(&(self.y_fmt)(v))
            );
        }
        let x_ticks: Vec<(f64, String)> = if self.x_ticks.is_empty() {
            nice_ticks(x0, x1, 8)
                .into_iter()
                .map(|x| (x, format!("{x}")))
                .collect()
        } else {
            self.x_ticks.clone()
        };
        for (x, label) in x_ticks {
            let px = sx(x);
            let _ = write!(
                out,
                r##"<line x1="{px:.1}" x2="{px:.1}" y1="{TOP}" y2="{}" stroke="#eee"/><text x="{px:.1}" y="{}" text-anchor="middle" class="tick">{}</text>"##,
                TOP + ph,
                TOP + ph + 16.0,
                escape(&label)
            );
        }
        let _ = write!(
            out,
            r#"<text x="{}" y="{}" text-anchor="middle" class="label">{}</text><text x="14" y="{}" text-anchor="middle" transform="rotate(-90 14 {})" class="label">{}</text>"#,
            LEFT + pw / 2.0,
            H - 6.0,
            escape(&self.x_label),
            TOP + ph / 2.0,
            TOP + ph / 2.0,
            escape(&self.y_label)
        );
        // Lines and legend.
        for (i, s) in self.series.iter().enumerate() {
            let path: Vec<String> = s
                .points
                .iter()
                .map(|&(x, y)| format!("{:.1},{:.1}", sx(x), sy(y)))
                .collect();
            let _ = write!(
                out,
                r#"<polyline fill="none" stroke="{c}" stroke-width="1.8" points="{p}"/><rect x="{lx}" y="{ly}" width="12" height="3" fill="{c}"/><text x="{tx}" y="{ty}" class="tick">{n}</text>"#,
                c = s.color,
                p = path.join(" "),
                lx = LEFT + 10.0 + 130.0 * i as f64,
                ly = TOP - 12.0,
                tx = LEFT + 26.0 + 130.0 * i as f64,
                ty = TOP - 7.0,
                n = escape(&s.name)
            );
        }
        out.push_str("</svg>");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_render_points_and_escape_text() {
        let c = Chart {
            title: "a <b>".into(),
            x_label: "s".into(),
            y_label: "µs".into(),
            y_log: true,
            x_ticks: vec![],
            y_fmt: |v| format!("{v}"),
            series: vec![Series {
                name: "p99".into(),
                color: "red",
                points: vec![(0.0, 10.0), (1.0, 1000.0), (2.0, 0.0)],
            }],
        };
        let svg = c.render();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains("a &lt;b&gt;"));
        assert_eq!(svg.matches("<polyline").count(), 1);
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
        let empty = Chart {
            series: vec![],
            ..c
        };
        assert!(empty.render().contains("no data"));
    }

    #[test]
    fn ticks_are_round_numbers() {
        assert_eq!(
            nice_ticks(0.0, 100.0, 5),
            vec![0.0, 20.0, 40.0, 60.0, 80.0, 100.0]
        );
        assert_eq!(nice_ticks(3.0, 3.0, 5), vec![3.0]);
    }
}
