//! bench.png: decode, ceiling and pipeline FPS per backend, on a log axis.

use std::path::Path;

use plotters::prelude::*;

use super::report::Report;

/// Draws the chart; the error is plotters' message.
pub(super) fn draw(r: &Report, path: &Path) -> Result<(), String> {
    draw_inner(r, path).map_err(|e| e.to_string())
}

fn draw_inner(r: &Report, path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    // The font annotate.rs embeds; plotters keeps its own parsed copy by name.
    plotters::style::register_font("sans-serif", FontStyle::Normal, crate::annotate::FONT_BYTES)
        .map_err(|_| "cannot load the chart font")?;
    // Wider with many rows (models x threads), so the labels stay readable.
    let width = (240 * r.results.len() as u32).clamp(960, 3200);
    let root = BitMapBackend::new(path, (width, 540)).into_drawing_area();
    root.fill(&WHITE)?;
    let max = r
        .results
        .iter()
        .flat_map(|b| [b.decode_fps, b.ceiling_fps, b.pipeline_fps, b.limit.fps])
        .fold(1.0f64, f64::max)
        // Head room on the log axis for the legend, above the bars.
        * 4.0;
    let n = r.results.len().max(1);
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "edgelens bench: {} ({} frames, {} cores)",
                models(r),
                r.frames,
                r.cores
            ),
            ("sans-serif", 22),
        )
        .margin(16)
        .x_label_area_size(36)
        .y_label_area_size(56)
        // Decode runs 10-100x faster than inference: a log axis keeps both readable.
        .build_cartesian_2d(-0.5f64..n as f64 - 0.5, (1f64..max).log_scale())?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n)
        .x_label_formatter(&|x| {
            r.results
                .get(x.round().max(0.0) as usize)
                .filter(|_| (x - x.round()).abs() < 1e-6)
                .map(|b| label(r, b))
                .unwrap_or_default()
        })
        .y_desc("frames per second (log)")
        .label_style(("sans-serif", 14))
        .draw()?;
    let series = [
        ("decode+scale", RGBColor(120, 120, 120)),
        ("inference ceiling", RGBColor(56, 140, 255)),
        ("full pipeline", RGBColor(255, 120, 40)),
    ];
    for (k, (name, color)) in series.into_iter().enumerate() {
        let bars = r.results.iter().enumerate().map(|(i, b)| {
            let v = [b.decode_fps, b.ceiling_fps, b.pipeline_fps][k];
            let x0 = i as f64 - 0.39 + k as f64 * 0.26;
            Rectangle::new([(x0, 1.0), (x0 + 0.24, v.max(1.0))], color.filled())
        });
        chart
            .draw_series(bars)?
            .label(name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
    }
    // The machine limit: a black bar across each row's group.
    let limits = r
        .results
        .iter()
        .enumerate()
        .filter(|(_, b)| b.limit.fps > 0.0);
    chart
        .draw_series(limits.map(|(i, b)| {
            let y = b.limit.fps;
            Rectangle::new(
                [(i as f64 - 0.42, y / 1.02), (i as f64 + 0.42, y * 1.02)],
                BLACK.filled(),
            )
        }))?
        .label("machine limit")
        .legend(|(x, y)| Rectangle::new([(x, y - 2), (x + 12, y + 2)], BLACK.filled()));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()?;
    root.present()?;
    Ok(())
}

/// "ort (1 thr)"; the model name leads when the run has several models, and the backend is
/// left out when all rows share one, so the labels fit under the bars.
fn label(r: &Report, b: &super::report::BackendResult) -> String {
    let models = r.results.iter().any(|x| x.model != b.model);
    let backends = r.results.iter().any(|x| x.backend != b.backend);
    match (models, backends) {
        (true, true) => format!("{} {} ({} thr)", b.model, b.backend, b.threads),
        (true, false) => format!("{} ({} thr)", b.model, b.threads),
        _ => format!("{} ({} thr)", b.backend, b.threads),
    }
}

/// The run's models in order, without repeats ("a, b").
fn models(r: &Report) -> String {
    let mut names: Vec<&str> = Vec::new();
    for b in &r.results {
        if !names.contains(&b.model.as_str()) {
            names.push(&b.model);
        }
    }
    if names.is_empty() {
        return r.model.clone();
    }
    names.join(", ")
}
