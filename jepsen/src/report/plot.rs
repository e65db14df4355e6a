//! `latency.svg` and `rate.svg`, drawn with plotters' SVG backend (text is
//! written as SVG text, so no font files are needed).
//!
//! Both have time in seconds on the x axis and the fault periods shaded, so a
//! spike of `info` or a drop in throughput can be read against the fault that
//! caused it.

use crate::history::{Event, Kind};
use crate::nemesis::Period;
use plotters::prelude::*;
use std::collections::HashMap;
use std::path::Path;

const SIZE: (u32, u32) = (1200, 500);
const SHADE: RGBColor = RGBColor(255, 190, 190);
const OK: RGBColor = RGBColor(46, 139, 87);
const FAIL: RGBColor = RGBColor(200, 30, 30);
const INFO: RGBColor = RGBColor(230, 150, 0);

fn color(kind: Kind) -> RGBColor {
    match kind {
        Kind::Ok => OK,
        Kind::Fail => FAIL,
        _ => INFO,
    }
}

fn io<E: std::fmt::Display>(e: E) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

/// (completion time s, latency ms, kind) of every completed operation.
fn latencies(events: &[Event]) -> Vec<(f64, f64, Kind)> {
    let mut open: HashMap<u64, u64> = HashMap::new();
    let mut points = Vec::new();
    for e in events {
        if e.kind == Kind::Invoke {
            open.insert(e.process, e.time);
        } else if let Some(start) = open.remove(&e.process) {
            let ms = (e.time.saturating_sub(start)) as f64 / 1e6;
            points.push((e.time as f64 / 1e9, ms.max(0.01), e.kind));
        }
    }
    points
}

fn end_time(events: &[Event]) -> f64 {
    events.last().map_or(1.0, |e| e.time as f64 / 1e9).max(1.0)
}

/// One shaded rectangle per fault period, spanning `low..high`.
fn shading(periods: &[Period], end: f64, low: f64, high: f64) -> Vec<Rectangle<(f64, f64)>> {
    periods
        .iter()
        .map(|p| {
            let start = p.start as f64 / 1e9;
            let stop = p.end.map_or(end, |t| t as f64 / 1e9);
            Rectangle::new([(start, high), (stop, low)], SHADE.mix(0.5).filled())
        })
        .collect()
}

/// Latency of every completed operation against its completion time.
///
/// # Errors
/// When the file cannot be written.
pub fn latency(path: &Path, events: &[Event], periods: &[Period]) -> std::io::Result<()> {
    let points = latencies(events);
    let end = end_time(events);
    let top = points.iter().map(|p| p.1).fold(10.0f64, f64::max) * 1.5;
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(io)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("latency (shaded: faults)", ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..end, (0.01f64..top).log_scale())
        .map_err(io)?;
    chart
        .configure_mesh()
        .x_desc("time (s)")
        .y_desc("latency (ms)")
        .draw()
        .map_err(io)?;
    chart
        .draw_series(shading(periods, end, 0.01, top))
        .map_err(io)?;
    for kind in [Kind::Ok, Kind::Fail, Kind::Info] {
        let c = color(kind);
        chart
            .draw_series(
                points
                    .iter()
                    .filter(|p| p.2 == kind)
                    .map(move |p| Circle::new((p.0, p.1), 2, c.filled())),
            )
            .map_err(io)?
            .label(format!("{kind:?}").to_lowercase())
            .legend(move |(x, y)| Circle::new((x, y), 4, c.filled()));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(io)?;
    root.present().map_err(io)
}

/// Completions per second, by kind.
///
/// # Errors
/// When the file cannot be written.
pub fn rate(path: &Path, events: &[Event], periods: &[Period]) -> std::io::Result<()> {
    let end = end_time(events);
    let buckets = end.ceil() as usize + 1;
    let mut series: Vec<(Kind, Vec<f64>)> = [Kind::Ok, Kind::Fail, Kind::Info]
        .into_iter()
        .map(|k| (k, vec![0.0; buckets]))
        .collect();
    for e in events.iter().filter(|e| e.kind != Kind::Invoke) {
        let bucket = ((e.time as f64 / 1e9) as usize).min(buckets - 1);
        if let Some((_, counts)) = series.iter_mut().find(|(k, _)| *k == e.kind) {
            counts[bucket] += 1.0;
        }
    }
    let top = series
        .iter()
        .flat_map(|(_, c)| c.iter().copied())
        .fold(1.0f64, f64::max)
        * 1.1;
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(io)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("throughput (shaded: faults)", ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..end, 0f64..top)
        .map_err(io)?;
    chart
        .configure_mesh()
        .x_desc("time (s)")
        .y_desc("operations / s")
        .draw()
        .map_err(io)?;
    chart
        .draw_series(shading(periods, end, 0.0, top))
        .map_err(io)?;
    for (kind, counts) in &series {
        let c = color(*kind);
        chart
            .draw_series(LineSeries::new(
                counts.iter().enumerate().map(|(i, n)| (i as f64 + 0.5, *n)),
                c.stroke_width(2),
            ))
            .map_err(io)?
            .label(format!("{kind:?}").to_lowercase())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], c.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(io)?;
    root.present().map_err(io)
}
