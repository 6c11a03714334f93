//! What the pages' inline SVG plots share: the canvas and its plot area, grid lines and axis
//! labels in one style. The path page plots lags over time, the report t-visibility over age;
//! sharing the frame keeps them reading (and printing) alike, without JavaScript.

use std::fmt::Write as _;

use crate::status::esc;

/// A plot's canvas in SVG user units: the whole picture and the margins around the plot area
/// (left for the y labels, bottom for the x labels).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Frame {
    pub width: f64,
    pub height: f64,
    pub left: f64,
    pub right: f64,
    pub top: f64,
    pub bottom: f64,
}

impl Frame {
    pub fn plot_width(&self) -> f64 {
        self.width - self.left - self.right
    }

    pub fn plot_height(&self) -> f64 {
        self.height - self.top - self.bottom
    }

    /// The x of a fraction of the plot's width, held inside the plot.
    pub fn x(&self, fraction: f64) -> f64 {
        self.left + self.plot_width() * fraction.clamp(0.0, 1.0)
    }

    /// The y of a fraction of the plot's height, 0 at the bottom, held inside the plot.
    pub fn y(&self, fraction: f64) -> f64 {
        self.top + self.plot_height() * (1.0 - fraction.clamp(0.0, 1.0))
    }

    /// Opens the `<svg>` (as wide as the page, `label` for screen readers) and draws the plot
    /// area; the caller closes it with `</svg>`.
    pub fn open(&self, label: &str) -> String {
        let mut svg = String::with_capacity(8192);
        let _ = write!(
            svg,
            r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="100%" role="img" aria-label="{label}">
<rect x="{l}" y="{t}" width="{pw}" height="{ph}" fill="#fff" stroke="#d0d7de"/>
"##,
            w = self.width,
            h = self.height,
            label = esc(label),
            l = self.left,
            t = self.top,
            pw = self.plot_width(),
            ph = self.plot_height(),
        );
        svg
    }

    /// A grid line across the plot at `fraction` of its height, labelled on the left.
    pub fn y_tick(&self, svg: &mut String, fraction: f64, label: &str) {
        let yy = self.y(fraction);
        let _ = writeln!(
            svg,
            r##"<line x1="{l}" x2="{x2}" y1="{yy:.1}" y2="{yy:.1}" stroke="#eaeef2"/><text x="{tx}" y="{ty:.1}" font-size="11" text-anchor="end" fill="#57606a">{label}</text>"##,
            l = self.left,
            x2 = self.width - self.right,
            tx = self.left - 6.0,
            ty = yy + 4.0,
            label = esc(label),
        );
    }

    /// A label under the plot, centred on `x`, on the `row`-th line below it (0 first).
    pub fn x_label(&self, svg: &mut String, x: f64, row: u32, label: &str) {
        let _ = writeln!(
            svg,
            r##"<text x="{x:.1}" y="{ty}" font-size="11" text-anchor="middle" fill="#57606a">{label}</text>"##,
            ty = self.height - self.bottom + 20.0 + 14.0 * f64::from(row),
            label = esc(label),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const F: Frame = Frame {
        width: 100.0,
        height: 60.0,
        left: 10.0,
        right: 10.0,
        top: 10.0,
        bottom: 10.0,
    };

    #[test]
    fn fractions_map_into_the_plot_area_and_stay_there() {
        assert_eq!(
            (F.x(0.0), F.x(0.5), F.x(1.0), F.x(7.0)),
            (10.0, 50.0, 90.0, 90.0)
        );
        assert_eq!((F.y(0.0), F.y(1.0), F.y(-1.0)), (50.0, 10.0, 50.0));
    }

    #[test]
    fn labels_are_escaped() {
        let mut svg = F.open("a <b>");
        F.y_tick(&mut svg, 0.5, "<y>");
        F.x_label(&mut svg, 20.0, 1, "<x>");
        assert!(!svg.contains("<b>") && !svg.contains("<x>") && !svg.contains("<y>"));
        assert!(
            svg.contains("&lt;x&gt;") && svg.contains(r#"y="84""#),
            "{svg}"
        );
    }
}
