//! SVG line charts with error bars (plotters, no system fonts needed).

use std::path::Path;

use plotters::prelude::*;

/// One line of a chart.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend label.
    pub label: String,
    /// Points: x, y, and the 95% interval (low, high).
    pub points: Vec<(f64, f64, f64, f64)>,
}

const COLOURS: [RGBColor; 6] = [
    RGBColor(214, 39, 40),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(31, 119, 180),
    RGBColor(148, 103, 189),
    RGBColor(90, 90, 90),
];

/// Axes and titles.
#[derive(Debug, Clone)]
pub struct Chart<'a> {
    /// The title.
    pub title: &'a str,
    /// X axis label.
    pub x: &'a str,
    /// Y axis label.
    pub y: &'a str,
    /// Logarithmic x axis.
    pub log_x: bool,
    /// Y range, or fitted to the data.
    pub y_range: Option<(f64, f64)>,
}

fn bounds(series: &[Series], c: &Chart<'_>) -> (f64, f64, f64, f64) {
    let pts = series.iter().flat_map(|s| s.points.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
    );
    for (x, _, lo, hi) in pts {
        x0 = x0.min(*x);
        x1 = x1.max(*x);
        y0 = y0.min(*lo);
        y1 = y1.max(*hi);
    }
    if !x0.is_finite() {
        (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    if let Some((a, b)) = c.y_range {
        (y0, y1) = (a, b);
    } else {
        let pad = ((y1 - y0) * 0.08).max(1e-9);
        (y0, y1) = ((y0 - pad).min(0.0_f64.max(y0 - pad)), y1 + pad);
    }
    (x0, x1, y0, y1)
}

/// Draws `series` into an SVG file.
pub fn line_chart(path: &Path, chart: &Chart<'_>, series: &[Series]) -> Result<(), String> {
    let root = SVGBackend::new(path, (760, 440)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let (x0, x1, y0, y1) = bounds(series, chart);
    let mut builder = ChartBuilder::on(&root);
    builder
        .caption(chart.title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(42)
        .y_label_area_size(60);
    // The two axis types are different types in plotters; the drawing is
    // the same for both.
    macro_rules! finish {
        ($x:expr) => {{
            let mut ctx = builder
                .build_cartesian_2d($x, y0..y1)
                .map_err(|e| e.to_string())?;
            ctx.configure_mesh()
                .x_desc(chart.x)
                .y_desc(chart.y)
                .draw()
                .map_err(|e| e.to_string())?;
            draw(&mut ctx, series)?;
            ctx.configure_series_labels()
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .draw()
                .map_err(|e| e.to_string())?;
        }};
    }
    if chart.log_x {
        finish!((x0.max(1e-9)..x1).log_scale());
    } else {
        finish!(x0..x1);
    }
    root.present().map_err(|e| e.to_string())
}

fn draw<
    DB: DrawingBackend,
    X: plotters::coord::ranged1d::Ranged<ValueType = f64>,
    Y: plotters::coord::ranged1d::Ranged<ValueType = f64>,
>(
    ctx: &mut ChartContext<'_, DB, Cartesian2d<X, Y>>,
    series: &[Series],
) -> Result<(), String> {
    for (i, s) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        ctx.draw_series(LineSeries::new(
            s.points.iter().map(|p| (p.0, p.1)),
            colour.stroke_width(2),
        ))
        .map_err(|e| e.to_string())?
        .label(s.label.clone())
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2)));
        ctx.draw_series(
            s.points
                .iter()
                .map(|p| ErrorBar::new_vertical(p.0, p.2, p.1, p.3, colour.filled(), 6)),
        )
        .map_err(|e| e.to_string())?;
        ctx.draw_series(
            s.points
                .iter()
                .map(|p| Circle::new((p.0, p.1), 3, colour.filled())),
        )
        .map_err(|e| e.to_string())?;
    }
    Ok(())
}
