//! Line charts as self-contained SVG: axes with ticks and numbers, axis labels, a title, a
//! legend and optional confidence bands. Text is SVG `<text>` drawn by the viewer's own font,
//! so nothing is bundled and every label stays selectable and searchable.

use std::fmt::Write;

/// Colors for series, in order (Tableau 10), with their names for text reports.
pub const PALETTE: [(&str, &str); 10] = [
    ("blue", "#1f77b4"),
    ("orange", "#ff7f0e"),
    ("green", "#2ca02c"),
    ("red", "#d62728"),
    ("purple", "#9467bd"),
    ("brown", "#8c564b"),
    ("pink", "#e377c2"),
    ("gray", "#7f7f7f"),
    ("olive", "#bcbd22"),
    ("cyan", "#17becf"),
];

/// One line of a chart.
#[derive(Debug, Clone, Default)]
pub struct Series {
    /// The legend entry.
    pub label: String,
    /// `(x, y)` points, in order of x.
    pub points: Vec<(f64, f64)>,
    /// `(x, low, high)`: a shaded band around the line (a confidence interval), if any.
    pub band: Vec<(f64, f64, f64)>,
}

/// A line chart.
#[derive(Debug, Clone, Default)]
pub struct Chart {
    /// The title above the plot.
    pub title: String,
    /// The x axis's label.
    pub x_label: String,
    /// The y axis's label.
    pub y_label: String,
    /// A fixed y range; `None` fits the data (bands included).
    pub y_range: Option<(f64, f64)>,
    /// The lines, colored in [`PALETTE`] order.
    pub series: Vec<Series>,
}

const WIDTH: f64 = 820.0;
const HEIGHT: f64 = 460.0;
const LEFT: f64 = 72.0;
const RIGHT: f64 = 200.0;
const TOP: f64 = 42.0;
const BOTTOM: f64 = 56.0;

/// `text` with the XML special characters escaped.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// About five round tick values covering `[low, high]`.
fn ticks(low: f64, high: f64) -> Vec<f64> {
    let span = (high - low).max(1e-12);
    let raw = span / 5.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude);
    let first = (low / step).ceil() as i64;
    let last = (high / step).floor() as i64;
    (first..=last).map(|k| k as f64 * step).collect()
}

/// A tick's text: no trailing zeros, at most 4 decimals.
fn number(x: f64) -> String {
    let text = format!("{x:.4}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".into()
    } else {
        text.into()
    }
}

impl Chart {
    /// The x and y ranges of the data (bands included), each widened when empty.
    fn ranges(&self) -> ((f64, f64), (f64, f64)) {
        let xs = self.series.iter().flat_map(|s| {
            s.points
                .iter()
                .map(|p| p.0)
                .chain(s.band.iter().map(|b| b.0))
        });
        let ys = self.series.iter().flat_map(|s| {
            s.points
                .iter()
                .map(|p| p.1)
                .chain(s.band.iter().flat_map(|b| [b.1, b.2]))
        });
        let fit = |values: &mut dyn Iterator<Item = f64>| {
            let (lo, hi) = values
                .filter(|v| v.is_finite())
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
                    (lo.min(v), hi.max(v))
                });
            match (lo.is_finite(), hi > lo) {
                (false, _) => (0.0, 1.0),
                (true, true) => (lo, hi),
                (true, false) => (lo - 0.5, hi + 0.5),
            }
        };
        let x = fit(&mut xs.into_iter());
        let y = self.y_range.unwrap_or_else(|| fit(&mut ys.into_iter()));
        (x, y)
    }

    /// The chart as an SVG document.
    pub fn to_svg(&self) -> String {
        let ((x0, x1), (y0, y1)) = self.ranges();
        let (w, h) = (WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
        let px = |x: f64| LEFT + (x - x0) / (x1 - x0) * w;
        let py = |y: f64| TOP + (1.0 - (y.clamp(y0, y1) - y0) / (y1 - y0)) * h;
        let mut svg = String::new();
        let _ = write!(
            svg,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
        );
        let _ = write!(
            svg,
            r#"<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/><text x="{}" y="24" text-anchor="middle" font-size="15">{}</text>"#,
            LEFT + w / 2.0,
            escape(&self.title)
        );
        // Grid, ticks and their numbers.
        for y in ticks(y0, y1) {
            let _ = write!(
                svg,
                r##"<line x1="{LEFT}" x2="{right}" y1="{at:.1}" y2="{at:.1}" stroke="#e4e4e4"/><text x="{text_x}" y="{text_y:.1}" text-anchor="end">{label}</text>"##,
                right = LEFT + w,
                at = py(y),
                text_x = LEFT - 6.0,
                text_y = py(y) + 4.0,
                label = number(y)
            );
        }
        for x in ticks(x0, x1) {
            let _ = write!(
                svg,
                r##"<line x1="{0:.1}" x2="{0:.1}" y1="{TOP}" y2="{1}" stroke="#e4e4e4"/><text x="{0:.1}" y="{2}" text-anchor="middle">{3}</text>"##,
                px(x),
                TOP + h,
                TOP + h + 18.0,
                number(x)
            );
        }
        let _ = write!(
            svg,
            r##"<rect x="{LEFT}" y="{TOP}" width="{w}" height="{h}" fill="none" stroke="#444"/><text x="{}" y="{}" text-anchor="middle">{}</text><text transform="translate(18 {}) rotate(-90)" text-anchor="middle">{}</text>"##,
            LEFT + w / 2.0,
            HEIGHT - 14.0,
            escape(&self.x_label),
            TOP + h / 2.0,
            escape(&self.y_label)
        );
        // Bands under the lines, then the lines, then the legend.
        for (k, series) in self.series.iter().enumerate() {
            let color = PALETTE[k % PALETTE.len()].1;
            if series.band.len() >= 2 {
                let upper = series.band.iter().map(|b| (px(b.0), py(b.2)));
                let lower = series.band.iter().rev().map(|b| (px(b.0), py(b.1)));
                let points: Vec<String> = upper
                    .chain(lower)
                    .map(|(x, y)| format!("{x:.1},{y:.1}"))
                    .collect();
                let _ = write!(
                    svg,
                    r#"<polygon points="{}" fill="{color}" fill-opacity="0.15" stroke="none"/>"#,
                    points.join(" ")
                );
            }
        }
        for (k, series) in self.series.iter().enumerate() {
            let color = PALETTE[k % PALETTE.len()].1;
            let points: Vec<String> = series
                .points
                .iter()
                .filter(|p| p.1.is_finite())
                .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
                .collect();
            let _ = write!(
                svg,
                r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2"/>"#,
                points.join(" ")
            );
            let y = TOP + 8.0 + 20.0 * k as f64;
            let _ = write!(
                svg,
                r#"<line x1="{0}" x2="{1}" y1="{y}" y2="{y}" stroke="{color}" stroke-width="3"/><text x="{2}" y="{3}">{4}</text>"#,
                LEFT + w + 14.0,
                LEFT + w + 38.0,
                LEFT + w + 44.0,
                y + 4.0,
                escape(&series.label)
            );
        }
        svg.push_str("</svg>\n");
        svg
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        assert_eq!(
            ticks(0.0, 1.0),
            [0.0, 0.2, 0.4, 0.6000000000000001, 0.8, 1.0]
        );
        assert_eq!(ticks(0.0, 30.0), [0.0, 10.0, 20.0, 30.0]);
        assert_eq!(number(0.25), "0.25");
        assert_eq!(number(30.0), "30");
        assert_eq!(number(-0.0), "0");
    }

    #[test]
    fn a_chart_carries_its_title_labels_legend_and_bands_as_text() {
        let chart = Chart {
            title: "reward <mean>".into(),
            x_label: "step".into(),
            y_label: "reward".into(),
            y_range: Some((0.0, 1.0)),
            series: vec![
                Series {
                    label: "grpo[clip_high=0.28]".into(),
                    points: vec![(1.0, 0.2), (2.0, 0.4), (3.0, 0.5)],
                    band: vec![(1.0, 0.1, 0.3), (2.0, 0.3, 0.5), (3.0, 0.4, 0.6)],
                },
                Series {
                    label: "cepo".into(),
                    points: vec![(1.0, 0.3), (2.0, f64::NAN), (3.0, 0.6)],
                    band: Vec::new(),
                },
            ],
        };
        let svg = chart.to_svg();
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        for text in [
            "reward &lt;mean&gt;",
            ">step<",
            ">reward<",
            ">grpo[clip_high=0.28]<",
            ">cepo<",
            ">0.4<",
        ] {
            assert!(svg.contains(text), "missing {text}: {svg}");
        }
        assert_eq!(svg.matches("<polygon").count(), 1, "one band");
        assert_eq!(svg.matches("<polyline").count(), 2);
        // The NaN point is left out of its line: two points remain.
        let cepo = svg.split("<polyline").nth(2).unwrap();
        let points = cepo.split('"').nth(1).unwrap();
        assert_eq!(points.split(' ').count(), 2);
    }
}
