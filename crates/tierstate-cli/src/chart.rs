//! `nav ID --svg FILE | --png FILE`: the NAV series and its drawdown from the high-water mark,
//! drawn with plotters. Labels are laid out with a TrueType font found at run time
//! (`TIERSTATE_FONT`, or DejaVu/Liberation Sans where Debian puts them): plotters' pure-Rust
//! text path needs one, and a binary that embeds a font would carry 700 KB for two labels.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use plotters::coord::Shift;
use plotters::prelude::*;
use rust_decimal::prelude::ToPrimitive;
use serde_json::json;
use tierstate::StateStore;
use tierstate::accounting::{NavPoint, Portfolio};

use crate::error::{CliError, Result};
use crate::out::{Report, time};
use crate::records::deployment;

/// NAV points read per page.
const PAGE: usize = 10_000;
/// Where the labels' font is looked for when `TIERSTATE_FONT` names none.
const FONTS: [&str; 3] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
];

/// Every stored NAV point, oldest first.
pub async fn series(p: &Portfolio) -> Result<Vec<NavPoint>> {
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let page = p.nav_series(cursor, PAGE).await?;
        out.extend(page.points);
        if !page.truncated || page.cursor.is_none() {
            return Ok(out);
        }
        cursor = page.cursor;
    }
}

/// (seconds since the first point, NAV, drawdown % from the running peak).
fn curve(points: &[NavPoint]) -> Vec<(f64, f64, f64)> {
    let t0 = points.first().map_or(0, |p| p.time.timestamp_micros());
    let mut peak = f64::MIN;
    points
        .iter()
        .map(|p| {
            let v = p.value.to_f64().unwrap_or(0.0);
            peak = peak.max(v);
            let dd = if peak > 0.0 {
                (peak - v) / peak * 100.0
            } else {
                0.0
            };
            ((p.time.timestamp_micros() - t0) as f64 / 1e6, v, -dd)
        })
        .collect()
}

/// Draws the chart(s) asked for and reports the series' figures.
///
/// # Errors
/// `Usage` with neither file; `Other` for fewer than two points, no font for PNG, or a
/// drawing failure; `Io` naming the file.
pub async fn nav(
    store: &Arc<dyn StateStore>,
    id: &str,
    svg: Option<PathBuf>,
    png: Option<PathBuf>,
) -> Result<Report> {
    if svg.is_none() && png.is_none() {
        return Err(CliError::Usage(
            "name a file: --svg FILE or --png FILE".into(),
        ));
    }
    let id = deployment(id)?;
    let p = Portfolio::new(store.clone(), &id);
    let points = series(&p).await?;
    if points.len() < 2 {
        return Err(CliError::Other(format!(
            "{id} has {} NAV point(s); a chart needs two",
            points.len()
        )));
    }
    let summary = p.nav_summary().await?;
    let start = points[0].time;
    let title = format!("{id}: NAV and drawdown");
    let data = curve(&points);
    let mut written = Vec::new();
    let font = register_font();
    let labels = font.is_ok();
    if let Some(path) = &svg {
        // SVG text is laid out by the viewer; a font only sizes the labels here, so without
        // one the chart is still drawn.
        write_chart(path, "svg", |tmp| {
            let root = SVGBackend::new(tmp, (1000, 600)).into_drawing_area();
            draw(root, &data, start, &title, labels)
        })?;
        written.push(path.clone());
    }
    if let Some(path) = &png {
        font?;
        write_chart(path, "png", |tmp| {
            let root = BitMapBackend::new(tmp, (1000, 600)).into_drawing_area();
            draw(root, &data, start, &title, true)
        })?;
        written.push(path.clone());
    }
    let fold = summary.fold;
    let mut text = format!(
        "{} NAV points from {} to {}\nlast {}  high-water mark {}  max drawdown {} ({}%)\n",
        points.len(),
        time(start),
        time(points[points.len() - 1].time),
        fold.last_value,
        fold.high_water_mark,
        fold.max_drawdown,
        fold.max_drawdown_pct
    );
    for w in &written {
        text.push_str(&format!("wrote {}\n", w.display()));
    }
    Ok(Report {
        text,
        json: json!({
            "points": points.len(),
            "from": start,
            "to": points[points.len() - 1].time,
            "last": fold.last_value,
            "high_water_mark": fold.high_water_mark,
            "max_drawdown": fold.max_drawdown,
            "max_drawdown_pct": fold.max_drawdown_pct,
            "written": written,
        }),
    })
}

/// The NAV and drawdown chart as SVG text, for a page; `None` with fewer than two points.
///
/// # Errors
/// As [`nav`]'s reads; `Other` if drawing fails.
pub async fn nav_svg(
    store: &Arc<dyn StateStore>,
    id: &tierstate::DeploymentId,
) -> Result<Option<String>> {
    let p = Portfolio::new(store.clone(), id);
    let points = series(&p).await?;
    if points.len() < 2 {
        return Ok(None);
    }
    let start = points[0].time;
    let data = curve(&points);
    let labels = register_font().is_ok();
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (1000, 600)).into_drawing_area();
        draw(
            root,
            &data,
            start,
            &format!("{id}: NAV and drawdown"),
            labels,
        )
        .map_err(|e| CliError::Other(format!("cannot draw the chart: {e}")))?;
    }
    Ok(Some(out))
}

fn chart_error(path: &Path, e: impl std::fmt::Display) -> CliError {
    CliError::Other(format!("cannot draw {}: {e}", path.display()))
}

/// Checks that `path` suits the format (`.svg`/`.png`, any case, or no extension) before
/// anything is drawn.
///
/// # Errors
/// `Usage` naming the file and the format it would get.
pub fn check_chart_path(path: &Path, format: &str) -> Result<()> {
    match path.extension().and_then(|e| e.to_str()) {
        None => Ok(()),
        Some(e) if e.eq_ignore_ascii_case(format) => Ok(()),
        Some(e) => Err(CliError::Usage(format!(
            "{} would hold a {} chart but ends in .{e}: name it .{format} (or drop the extension)",
            path.display(),
            format.to_uppercase()
        ))),
    }
}

/// Draws into a temporary file of the right extension beside `path` (the encoder picks the
/// format by extension), then renames it into place: a failed draw leaves no partial file.
fn write_chart(
    path: &Path,
    format: &str,
    draw: impl FnOnce(&Path) -> std::result::Result<(), String>,
) -> Result<()> {
    check_chart_path(path, format)?;
    let name = path
        .file_name()
        .map_or_else(|| "chart".into(), |n| n.to_string_lossy().into_owned());
    let tmp = path.with_file_name(format!(".{name}.tmp-{}.{format}", std::process::id()));
    let drawn = draw(&tmp).map_err(|e| chart_error(path, e));
    let placed =
        drawn.and_then(|()| std::fs::rename(&tmp, path).map_err(|e| CliError::io(path, e)));
    if placed.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    placed
}

/// Loads the labels' font once (plotters keeps it for the process): `TIERSTATE_FONT` if set
/// (and only it), else DejaVu or Liberation Sans where Debian puts them.
fn register_font() -> std::result::Result<(), CliError> {
    static FONT: std::sync::OnceLock<std::result::Result<(), String>> = std::sync::OnceLock::new();
    FONT.get_or_init(|| {
        let path = match std::env::var_os("TIERSTATE_FONT").map(PathBuf::from) {
            Some(p) if p.is_file() => p,
            Some(p) => {
                return Err(format!(
                    "TIERSTATE_FONT={} is not a font file",
                    p.display()
                ));
            }
            None => FONTS.iter().map(PathBuf::from).find(|p| p.is_file()).ok_or_else(|| {
                "no TrueType font for the chart's labels: install fonts-dejavu-core or set TIERSTATE_FONT=/path/to/font.ttf".to_owned()
            })?,
        };
        let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        // plotters keeps registered fonts for the life of the process.
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
            .map_err(|_| format!("{} is not a usable TrueType font", path.display()))
    })
    .clone()
    .map_err(CliError::Other)
}

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    data: &[(f64, f64, f64)],
    start: DateTime<Utc>,
    title: &str,
    labels: bool,
) -> std::result::Result<(), String>
where
    DB::ErrorType: 'static,
{
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(err)?;
    let (top, bottom) = root.split_vertically(400);
    let x_max = data.last().map_or(1.0, |d| d.0).max(1.0);
    let (lo, hi) = data.iter().fold((f64::MAX, f64::MIN), |(lo, hi), d| {
        (lo.min(d.1), hi.max(d.1))
    });
    let pad = ((hi - lo) * 0.05).max(1e-6);
    let dd_min = data.iter().fold(0.0f64, |m, d| m.min(d.2)).min(-1e-6);
    // Over a short run, whole seconds would repeat along the axis: milliseconds then.
    let format = if x_max < 20.0 {
        "%H:%M:%S%.3f"
    } else {
        "%H:%M:%S"
    };
    let label = |s: &f64| {
        let t = start + chrono::Duration::milliseconds((s * 1000.0) as i64);
        t.format(format).to_string()
    };

    // Without a font (an SVG drawn where none is installed) the chart has no text.
    let mut builder = ChartBuilder::on(&top);
    builder
        .margin(12)
        .x_label_area_size(28)
        .y_label_area_size(80);
    if labels {
        builder.caption(title, ("sans-serif", 22));
    }
    let mut nav = builder
        .build_cartesian_2d(0.0..x_max, (lo - pad)..(hi + pad))
        .map_err(err)?;
    let mut mesh = nav.configure_mesh();
    if labels {
        mesh.x_label_formatter(&label).y_desc("NAV (USD)");
    } else {
        mesh.x_labels(0).y_labels(0);
    }
    mesh.draw().map_err(err)?;
    nav.draw_series(LineSeries::new(data.iter().map(|d| (d.0, d.1)), &BLUE))
        .map_err(err)?;

    let mut dd = ChartBuilder::on(&bottom)
        .margin(12)
        .x_label_area_size(28)
        .y_label_area_size(80)
        .build_cartesian_2d(0.0..x_max, (dd_min * 1.05)..0.0)
        .map_err(err)?;
    let mut mesh = dd.configure_mesh();
    if labels {
        mesh.x_label_formatter(&label).y_desc("drawdown %");
    } else {
        mesh.x_labels(0).y_labels(0);
    }
    mesh.draw().map_err(err)?;
    dd.draw_series(
        AreaSeries::new(data.iter().map(|d| (d.0, d.2)), 0.0, RED.mix(0.3)).border_style(RED),
    )
    .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}
