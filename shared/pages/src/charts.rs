//! Server-rendered SVG charts: plain markup drawn from numbers, readable
//! without script, each with a title for screen readers (the numbers are
//! also in a table under every chart).

use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;

/// One series of a bar chart.
pub struct Series<'a> {
    pub name: &'a str,
    /// A CSS colour.
    pub colour: &'a str,
    pub values: Vec<Decimal>,
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn float(value: Decimal) -> f64 {
    // Drawing only: positions on a screen, never money.
    value.to_f64().unwrap_or(0.0)
}

/// Grouped bars, one group per label.
pub fn bars(title: &str, labels: &[String], series: &[Series<'_>]) -> String {
    let (width, height, left, bottom, top) = (640.0, 240.0, 48.0, 28.0, 12.0);
    let max = series
        .iter()
        .flat_map(|s| s.values.iter().copied())
        .map(float)
        .fold(0.0_f64, f64::max)
        .max(1.0);
    let plot_h = height - bottom - top;
    let groups = labels.len().max(1) as f64;
    let group_w = (width - left) / groups;
    let bar_w = (group_w * 0.8 / series.len().max(1) as f64).max(1.0);
    let mut out = format!(
        "<svg class=\"chart\" viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"{}\" preserveAspectRatio=\"none\"><title>{}</title>",
        escape(title),
        escape(title)
    );
    for step in 0..=4 {
        let value = max * f64::from(step) / 4.0;
        let y = top + plot_h - plot_h * f64::from(step) / 4.0;
        out.push_str(&format!(
            "<line x1=\"{left}\" x2=\"{width}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#d0d7de\"/><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"end\" fill=\"#545d68\">{value:.prec$}</text>",
            left - 4.0,
            y + 3.0,
            prec = if max < 10.0 { 2 } else { 0 }
        ));
    }
    for (g, label) in labels.iter().enumerate() {
        let x0 = left + g as f64 * group_w + group_w * 0.1;
        for (s, one) in series.iter().enumerate() {
            let value = one.values.get(g).copied().unwrap_or_default();
            let h = plot_h * float(value).max(0.0) / max;
            let x = x0 + s as f64 * bar_w;
            out.push_str(&format!(
                "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"{}\"><title>{} {}: {value}</title></rect>",
                top + plot_h - h,
                (bar_w - 1.0).max(1.0),
                one.colour,
                escape(one.name),
                escape(label)
            ));
        }
        // Every label when few; otherwise every few, so they do not overlap.
        let every = (labels.len() / 8).max(1);
        if g % every == 0 {
            out.push_str(&format!(
                "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" fill=\"#545d68\">{}</text>",
                x0,
                height - 10.0,
                escape(label)
            ));
        }
    }
    out.push_str("</svg>");
    out
}

/// One horizontal bar per item, 0 to `max`.
pub fn horizontal(title: &str, items: &[(String, Decimal, &str)], max: Option<Decimal>) -> String {
    let (width, row, left) = (640.0, 34.0, 150.0);
    let height = row * items.len().max(1) as f64 + 8.0;
    let max = max
        .map(float)
        .unwrap_or_else(|| items.iter().map(|i| float(i.1)).fold(0.0_f64, f64::max))
        .max(f64::MIN_POSITIVE);
    let mut out = format!(
        "<svg class=\"chart\" viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"{}\"><title>{}</title>",
        escape(title),
        escape(title)
    );
    for (i, (label, value, colour)) in items.iter().enumerate() {
        let y = 4.0 + i as f64 * row;
        let w = ((width - left - 80.0) * float(*value).max(0.0) / max).max(0.0);
        out.push_str(&format!(
            "<text x=\"0\" y=\"{:.1}\" font-size=\"12\" fill=\"#1b1f24\">{}</text><rect x=\"{left}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{:.1}\" fill=\"{colour}\"><title>{}: {value}</title></rect><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\" fill=\"#1b1f24\">{value}</text>",
            y + row / 2.0,
            escape(label),
            row - 10.0,
            escape(label),
            left + w + 6.0,
            y + row / 2.0
        ));
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn charts_escape_their_labels_and_draw_every_value() {
        let svg = bars(
            "Issued <and> redeemed",
            &["<b>".to_string(), "2".to_string()],
            &[Series {
                name: "issued",
                colour: "#0b5cad",
                values: vec![dec!(10), dec!(0)],
            }],
        );
        assert!(!svg.contains("<b>"));
        assert_eq!(svg.matches("<rect").count(), 2);
        let svg = horizontal("Rates", &[("a\"".into(), dec!(0.5), "#000")], Some(dec!(1)));
        assert!(svg.contains("a&quot;"));
    }
}
