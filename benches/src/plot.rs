//! Latency-by-percentile plots (SVG): x is the percentile on a log(1 / (1 - p)) axis, so the
//! tail gets room, y is latency in milliseconds on a log scale; several runs overlaid.

use std::path::Path;

use plotters::prelude::*;

use crate::report::RunReport;

/// Draws `runs` (label, report) into an SVG file at `out`.
pub fn plot(runs: &[(String, RunReport)], out: &Path) -> anyhow::Result<()> {
    let series: Vec<(String, Vec<(f64, f64)>)> = runs
        .iter()
        .map(|(name, run)| {
            let points = run
                .distribution
                .iter()
                .map(|p| {
                    (
                        nines(p.percentile),
                        (p.latency_us as f64 / 1000.0).max(0.001),
                    )
                })
                .collect();
            (name.clone(), points)
        })
        .collect();
    let max_x = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|(x, _)| *x))
        .fold(1.0, f64::max);
    let (min_y, max_y) = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|(_, y)| *y))
        .fold((f64::MAX, 0.0f64), |(lo, hi), y| (lo.min(y), hi.max(y)));
    let min_y = if min_y == f64::MAX { 0.01 } else { min_y / 1.5 };
    let max_y = (max_y * 1.5).max(min_y * 10.0);
    let root = SVGBackend::new(out, (900, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("latency by percentile", ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..max_x, (min_y..max_y).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (ms)")
        .x_label_formatter(&|x| format!("{}%", percentile_label(*x)))
        .draw()?;
    for (i, (name, points)) in series.into_iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()?;
    root.present()?;
    Ok(())
}

/// Percentile (0–100) → "number of nines" axis: 90% → 1, 99% → 2, 99.9% → 3.
fn nines(percentile: f64) -> f64 {
    let tail = (1.0 - percentile / 100.0).max(1e-6);
    -tail.log10()
}

fn percentile_label(x: f64) -> String {
    let p = 100.0 * (1.0 - 10f64.powf(-x));
    if p < 99.0 {
        format!("{p:.0}")
    } else {
        format!("{p:.3}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    }
}
