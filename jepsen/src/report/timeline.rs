//! `timeline.html`: one lane per process, one box per operation from its
//! invocation to its completion (an invocation never completed runs to the end),
//! coloured by outcome, with the fault periods shaded behind. Hovering a box
//! shows the operation. Self-contained: no scripts, no external files.

use crate::history::{Event, Kind};
use crate::nemesis::Period;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::Path;

/// Pixels per second.
const SCALE: f64 = 40.0;
/// Pixels per lane.
const LANE: usize = 16;
/// Width of the lane labels.
const GUTTER: usize = 60;

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn x(nanos: u64) -> f64 {
    GUTTER as f64 + nanos as f64 / 1e9 * SCALE
}

/// Writes the timeline.
///
/// # Errors
/// When the file cannot be written.
pub fn write(path: &Path, events: &[Event], periods: &[Period]) -> std::io::Result<()> {
    let end = events.last().map_or(0, |e| e.time);
    let mut lanes: BTreeMap<u64, usize> = BTreeMap::new();
    for e in events {
        let next = lanes.len();
        lanes.entry(e.process).or_insert(next);
    }
    // Lanes in process order.
    for (i, lane) in lanes.values_mut().enumerate() {
        *lane = i;
    }
    let width = x(end) + 20.0;
    let height = (lanes.len() + 1) * LANE + 20;
    let mut html = String::new();
    let _ = write!(
        html,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>timeline</title><style>\
         body{{font:12px sans-serif;margin:8px}}\
         #t{{position:relative;width:{width:.0}px;height:{height}px}}\
         .op,.f,.l{{position:absolute;box-sizing:border-box}}\
         .op{{height:{h}px;border:1px solid #0003;overflow:hidden;font-size:10px;white-space:nowrap}}\
         .ok{{background:#8fd19e}}.fail{{background:#f19999}}.info{{background:#f5c26b}}\
         .f{{top:0;height:100%;background:#ff000018;border-left:1px solid #f003}}\
         .l{{left:0;width:{GUTTER}px;color:#555}}\
         .s{{position:absolute;top:0;height:100%;border-left:1px solid #0001;font-size:10px;color:#888}}\
         </style></head><body><p>One lane per process; green ok, red fail, orange info \
         (indeterminate: the client gave up; it may still take effect later); shaded: faults; \
         time in seconds along the top. Hover for details.</p><div id=\"t\">",
        h = LANE - 2
    );
    // A tick every five seconds.
    for second in (0..=end / 1_000_000_000).step_by(5) {
        let _ = write!(
            html,
            "<div class=\"s\" style=\"left:{:.1}px\">{second}</div>",
            x(second * 1_000_000_000)
        );
    }
    for p in periods {
        let left = x(p.start);
        let right = x(p.end.unwrap_or(end));
        let _ = write!(
            html,
            "<div class=\"f\" style=\"left:{left:.1}px;width:{:.1}px\" title=\"{}: {}\"></div>",
            (right - left).max(1.0),
            p.fault,
            escape(&p.detail)
        );
    }
    for (process, lane) in &lanes {
        let _ = write!(
            html,
            "<div class=\"l\" style=\"top:{}px\">p{process}</div>",
            (lane + 1) * LANE
        );
    }
    let mut open: HashMap<u64, &Event> = HashMap::new();
    let mut boxes: Vec<(&Event, Option<&Event>)> = Vec::new();
    for e in events {
        if e.kind == Kind::Invoke {
            open.insert(e.process, e);
        } else if let Some(invoke) = open.remove(&e.process) {
            boxes.push((invoke, Some(e)));
        }
    }
    boxes.extend(open.into_values().map(|invoke| (invoke, None)));
    for (invoke, done) in boxes {
        let left = x(invoke.time);
        let right = x(done.map_or(end, |d| d.time));
        let class = match done.map(|d| d.kind) {
            Some(Kind::Ok) => "ok",
            Some(Kind::Fail) => "fail",
            _ => "info",
        };
        let value = done
            .and_then(|d| d.value.as_ref())
            .or(invoke.value.as_ref())
            .map(|v| serde_json::to_string(v).unwrap_or_default())
            .unwrap_or_else(|| "nil".into());
        let title = format!(
            "#{} p{} {:?} {} {} -> {} on {} ({:.3}s..{}){}",
            invoke.index,
            invoke.process,
            invoke.f,
            invoke.key.as_deref().unwrap_or(""),
            value,
            class,
            done.and_then(|d| d.node.as_deref())
                .or(invoke.node.as_deref())
                .unwrap_or("?"),
            invoke.time as f64 / 1e9,
            done.map_or("?".into(), |d| format!("{:.3}s", d.time as f64 / 1e9)),
            done.and_then(|d| d.error.as_deref())
                .map(|e| format!(": {e}"))
                .unwrap_or_default(),
        );
        let lane = lanes.get(&invoke.process).copied().unwrap_or(0);
        let _ = write!(
            html,
            "<div class=\"op {class}\" style=\"left:{left:.1}px;top:{}px;width:{:.1}px\" title=\"{}\"></div>",
            (lane + 1) * LANE,
            (right - left).max(2.0),
            escape(&title)
        );
    }
    html.push_str("</div></body></html>\n");
    std::fs::write(path, html)
}
