//! Charts as inline SVG, drawn on the server: no script, colours as SVG attributes (the CSP
//! allows no inline style), a text alternative for screen readers, and a legend.

use maud::{html, Markup};

/// Colours for series, distinguishable and readable on white.
const PALETTE: [&str; 8] = [
    "#0b5394", "#b3261e", "#1e7b34", "#8a5a00", "#6a1b9a", "#00838f", "#5d4037", "#616161",
];

/// The colour of series `i`.
pub fn colour(i: usize) -> &'static str {
    PALETTE[i % PALETTE.len()]
}

/// Horizontal bars, one per `(label, value)`, with the value written beside each.
pub fn bars(title: &str, rows: &[(String, u64)]) -> Markup {
    let max = rows.iter().map(|r| r.1).max().unwrap_or(0).max(1);
    let row_h = 26u64;
    let label_w = 130u64;
    let bar_w = 190u64;
    let height = row_h * rows.len().max(1) as u64 + 8;
    let summary: Vec<String> = rows.iter().map(|(l, v)| format!("{l}: {v}")).collect();
    html! {
        svg.chart viewBox={ "0 0 360 " (height) } role="img" aria-label={ (title) ": " (summary.join(", ")) } {
            @for (i, (label, value)) in rows.iter().enumerate() {
                @let y = 4 + row_h * i as u64;
                @let w = (value * bar_w) / max;
                text x="0" y=(y + 17) { (truncate(label, 20)) }
                rect x=(label_w) y=(y + 4) width=(w.max(1)) height="16" fill=(colour(0)) {}
                text x=(label_w + w + 6) y=(y + 17) { (value) }
            }
        }
    }
}

/// Vertical bars stacked by series over `columns` (e.g. hours): `values[c][s]` is series `s`
/// in column `c`. `column_labels` name some columns (every fourth is written).
pub fn stacked(
    title: &str,
    column_labels: &[String],
    series: &[String],
    values: &[Vec<u64>],
) -> Markup {
    let totals: Vec<u64> = values.iter().map(|c| c.iter().sum()).collect();
    let max = totals.iter().copied().max().unwrap_or(0).max(1);
    let (w, h, left, bottom) = (360u64, 180u64, 28u64, 20u64);
    let n = values.len().max(1) as u64;
    let col_w = (w - left) / n;
    let plot_h = h - bottom - 8;
    let summary: Vec<String> = series
        .iter()
        .enumerate()
        .map(|(s, name)| {
            let sum: u64 = values.iter().map(|c| c.get(s).copied().unwrap_or(0)).sum();
            format!("{name}: {sum}")
        })
        .collect();
    html! {
        svg.chart viewBox={ "0 0 " (w) " " (h) } role="img" aria-label={ (title) ": " (summary.join(", ")) } {
            line x1=(left) y1=(8 + plot_h) x2=(w) y2=(8 + plot_h) stroke="#8a949e" {}
            text x="0" y="16" { (max) }
            text x="0" y=(8 + plot_h) { "0" }
            @for (c, column) in values.iter().enumerate() {
                @let x = left + col_w * c as u64 + 1;
                @let mut y = 8 + plot_h;
                @for (s, v) in column.iter().enumerate() {
                    @if *v > 0 {
                        @let bar_h = ((v * plot_h) / max).max(1);
                        @let top = y.saturating_sub(bar_h);
                        rect x=(x) y=(top) width=(col_w.saturating_sub(2).max(1)) height=(bar_h) fill=(colour(s)) {
                            title { (series.get(s).map(String::as_str).unwrap_or("")) ": " (v) }
                        }
                        ({ y = top; "" })
                    }
                }
                @if c % 4 == 0 {
                    text x=(x) y=(h - 6) { (column_labels.get(c).map(String::as_str).unwrap_or("")) }
                }
            }
        }
        (legend(series))
    }
}

/// The legend of `series`.
pub fn legend(series: &[String]) -> Markup {
    html! {
        ul.legend {
            @for (i, name) in series.iter().enumerate() {
                li {
                    svg.swatch viewBox="0 0 10 10" aria-hidden="true" { rect width="10" height="10" fill=(colour(i)) {} }
                    (name)
                }
            }
        }
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(n.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_say_their_values_in_words_too() {
        let svg = bars("Sessies", &[("Werkplek".into(), 12), ("Gast".into(), 3)]).into_string();
        assert!(
            svg.contains("aria-label=\"Sessies: Werkplek: 12, Gast: 3\""),
            "{svg}"
        );
        assert_eq!(svg.matches("<rect").count(), 2);
    }

    #[test]
    fn stacked_bars_stack_and_label() {
        let svg = stacked(
            "Weigeringen",
            &["00".into(), "01".into()],
            &["a".into(), "b".into()],
            &[vec![1, 2], vec![0, 3]],
        )
        .into_string();
        assert!(svg.contains("a: 1, b: 5"), "{svg}");
        // three non-empty pieces, and the legend's two swatches
        assert_eq!(svg.matches("<rect").count(), 5, "{svg}");
        assert!(!svg.contains("style="));
    }
}
