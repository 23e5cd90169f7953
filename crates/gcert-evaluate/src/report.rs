//! `report.html`: one self-contained page (every image embedded as a data URI, every plot an inline SVG drawn
//! with `plotters`) for a person to read: the certified rate, tolerances, kept fractions and times per
//! classifier × mutation, the certified rate against the tolerance (the paper's Fig. 10), the kept-fraction
//! bounds, and per image the strip along each mutation with every classifier's violated sub-ranges marked and
//! its counterexample shown, classifiers side by side.

use std::fmt::Write as _;
use std::path::Path;

use base64::Engine;
use plotters::prelude::*;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::record::{Record, Status};
use crate::summary::{Cell, Summary};

/// Escapes text for HTML.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "–".to_string(), |v| format!("{v:.digits$}"))
}

/// A PNG of the run folder as a data URI, with its width and height.
fn png_uri(dir: &Path, rel: &str) -> Result<(String, u32, u32)> {
    let path = dir.join(rel);
    let bytes = gcert_core::io::read_capped(&path, "a report image", 16 << 20)?;
    if bytes.len() < 24 || &bytes[1..4] != b"PNG" {
        return Err(Error::file(&path, "is not a PNG image"));
    }
    let w = u32::from_be_bytes([bytes[16], bytes[17], bytes[18], bytes[19]]);
    let h = u32::from_be_bytes([bytes[20], bytes[21], bytes[22], bytes[23]]);
    let b64 = base64::engine::general_purpose::STANDARD.encode(&bytes);
    Ok((format!("data:image/png;base64,{b64}"), w, h))
}

fn plot_error(e: impl std::fmt::Display) -> Error {
    Error::input(format!("cannot draw a report plot: {e}"))
}

/// The certified rate against the tolerance: for each classifier, the share of evaluated images whose largest
/// tolerance is at least `x`, for `x` from 0 to the requested amount.
fn rate_plot(mutation: &str, unit: &str, amount: f64, series: &[(String, Vec<f64>)]) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (460, 300)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(format!("certified rate vs tolerance: {mutation}"), ("sans-serif", 15))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(44)
            .build_cartesian_2d(0f64..amount, 0f64..1.02)
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .x_desc(format!("tolerance ± ({unit})"))
            .y_desc("certified rate")
            .draw()
            .map_err(plot_error)?;
        for (idx, (name, tols)) in series.iter().enumerate() {
            if tols.is_empty() {
                continue;
            }
            let color = Palette99::pick(idx).to_rgba();
            let n = tols.len() as f64;
            let pts: Vec<(f64, f64)> = (0..=240)
                .map(|j| {
                    let x = amount * j as f64 / 240.0;
                    (x, tols.iter().filter(|&&t| t >= x * (1.0 - 1e-12)).count() as f64 / n)
                })
                .collect();
            chart
                .draw_series(LineSeries::new(pts, color.stroke_width(2)))
                .map_err(plot_error)?
                .label(name.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerLeft)
            .border_style(BLACK)
            .background_style(WHITE.mix(0.85))
            .draw()
            .map_err(plot_error)?;
        root.present().map_err(plot_error)?;
    }
    Ok(svg)
}

/// The kept-fraction bounds over the images, each classifier's sorted lower bounds (solid) and upper bounds
/// (thin); for a complete method the two coincide.
fn kept_plot(mutation: &str, series: &[(String, Vec<(f64, f64)>)]) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (460, 300)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(format!("kept fraction bounds: {mutation}"), ("sans-serif", 15))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(44)
            .build_cartesian_2d(0f64..1f64, 0f64..1.02)
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .x_desc("share of evaluated images (sorted)")
            .y_desc("kept fraction of the range")
            .draw()
            .map_err(plot_error)?;
        for (idx, (name, kept)) in series.iter().enumerate() {
            if kept.is_empty() {
                continue;
            }
            let color = Palette99::pick(idx).to_rgba();
            let n = kept.len() as f64;
            let mut lower: Vec<f64> = kept.iter().map(|k| k.0).collect();
            let mut upper: Vec<f64> = kept.iter().map(|k| k.1).collect();
            lower.sort_by(f64::total_cmp);
            upper.sort_by(f64::total_cmp);
            let steps = |v: &[f64]| -> Vec<(f64, f64)> {
                v.iter()
                    .enumerate()
                    .flat_map(|(i, &y)| [(i as f64 / n, y), ((i + 1) as f64 / n, y)])
                    .collect()
            };
            chart
                .draw_series(LineSeries::new(steps(&upper), color.mix(0.5).stroke_width(1)))
                .map_err(plot_error)?;
            chart
                .draw_series(LineSeries::new(steps(&lower), color.stroke_width(2)))
                .map_err(plot_error)?
                .label(name.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .border_style(BLACK)
            .background_style(WHITE.mix(0.85))
            .draw()
            .map_err(plot_error)?;
        root.present().map_err(plot_error)?;
    }
    Ok(svg)
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1500px}
h1{font-size:22px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ccc}h3{font-size:15px;margin:18px 0 6px}
table{border-collapse:collapse;font-size:13px;margin:8px 0}td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}
th{background:#f3f3f3}td.l,th.l{text-align:left}.plots{display:flex;flex-wrap:wrap;gap:12px}
.meta{font-size:13px;color:#444}.meta code{font-size:12px}
img.strip{image-rendering:pixelated;display:block;margin:4px 0}.mut{margin:6px 0 10px}
.bar{position:relative;flex:none;height:14px;background:#d8f0d8;margin:2px 0;border:1px solid #9c9}
.bar .v{position:absolute;top:0;height:100%;background:#e04040}.bar .c{position:absolute;top:-2px;width:2px;height:18px;background:#222}
.bar .x{position:absolute;top:-3px;width:0;height:0;border-left:5px solid transparent;border-right:5px solid transparent;border-top:7px solid #000}
.row{display:flex;gap:10px;align-items:center;font-size:12px;margin:2px 0}.row .n{width:170px;flex:none;text-align:right;overflow-wrap:anywhere}
.cx img{image-rendering:pixelated;height:48px;vertical-align:middle}.ok{color:#176317}.bad{color:#b01010}.na{color:#777}
.img{border-top:1px solid #eee;padding:6px 0}";

/// Checks every image once the page has loaded: a broken one is reported on the console (the browser test
/// fails on any console message) and on the page.
const CHECK: &str = "<script>window.addEventListener('load',function(){var bad=0,imgs=document.images;\
for(var i=0;i<imgs.length;i++){if(!imgs[i].complete||imgs[i].naturalWidth===0){bad++;console.error('broken image '+i);}}\
document.body.setAttribute('data-images-checked',String(imgs.length));document.body.setAttribute('data-images-broken',String(bad));\
if(bad){var p=document.createElement('p');p.className='bad';p.textContent=bad+' image(s) failed to load';document.body.prepend(p);}});</script>";

/// Renders the report of the run in `dir` (its PNGs are read from there and embedded).
pub fn render(dir: &Path, manifest: &Value, summary: &Summary, records: &[Record]) -> Result<String> {
    let mut h = String::new();
    let classifiers: Vec<String> = {
        let mut v: Vec<String> = Vec::new();
        for c in &summary.cells {
            if !v.contains(&c.classifier) {
                v.push(c.classifier.clone());
            }
        }
        v
    };
    let mutations: Vec<(String, String, f64)> = {
        let mut v: Vec<(String, String, f64)> = Vec::new();
        for c in &summary.cells {
            if !v.iter().any(|m| m.0 == c.mutation) {
                v.push((c.mutation.clone(), c.unit.clone(), c.amount));
            }
        }
        v
    };
    let s = |v: &Value| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string());
    let _ = write!(
        h,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>gcert evaluate report</title><style>{STYLE}</style></head><body>\
<h1>gcert evaluate: robustness over {} image(s)</h1><div class=\"meta\"><p>Generator <code>{}</code>; images <code>{}</code>; method <b>{}</b>; \
{} image(s) skipped for reconstruction error (mean MSE {:.5} per pixel); {} result(s); wall time {:.1} s (the last run alone: {:.1} s).</p>\
<p>Each mutation is certified over <b>±amount</b> in its unit along the latent direction found at each image's inversion. \
A mutation the generator does not realise cleanly at an image is reported <i>not available</i> there and never certified along another direction.</p></div>",
        summary.images,
        esc(&s(&manifest["generator"])),
        esc(&s(&manifest["images"])),
        esc(&s(&manifest["settings"]["method"])),
        summary.skipped_images,
        summary.mean_reconstruction_mse,
        summary.records,
        summary.total_wall_s,
        summary.wall_s
    );
    // Summary table: one row per mutation × classifier, grouped by mutation so classifiers sit side by side.
    h.push_str("<h2>Summary</h2><table><tr><th class=\"l\">mutation</th><th class=\"l\">classifier</th><th>certified</th><th>rate</th>\
<th>mean tol.</th><th>median tol.</th><th>at full range</th><th>violated</th><th>unknown</th><th>not available</th><th>skipped</th>\
<th>kept (mean lower–upper)</th><th>wrong at centre</th><th>time / image (mean, median)</th></tr>");
    for c in &summary.cells {
        let ev = c.certified + c.violated + c.unknown;
        let _ = write!(
            h,
            "<tr><td class=\"l\">{}</td><td class=\"l\">{}</td><td>{}/{}</td><td>{}</td><td>{} {}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}–{}</td><td>{}</td><td>{} ms, {} ms</td></tr>",
            esc(&c.mutation),
            esc(&c.classifier),
            c.certified,
            ev,
            c.certified_rate.map_or_else(|| "–".into(), |r| format!("{:.1}%", 100.0 * r)),
            opt(c.mean_tolerance, 2),
            esc(&c.unit),
            opt(c.median_tolerance, 2),
            c.at_full_range,
            c.violated,
            c.unknown,
            c.not_available,
            c.skipped,
            opt(c.mean_kept_lower, 3),
            opt(c.mean_kept_upper, 3),
            c.wrong_at_center,
            opt(c.mean_time_ms, 0),
            opt(c.median_time_ms, 0),
        );
    }
    h.push_str("</table>");
    if !summary.precision.is_empty() {
        let _ = write!(
            h,
            "<h2>Per-pixel bounds (Table 4)</h2><p class=\"meta\">Width of per-pixel bounds over the mutation's range: gcert's exact bounds of the generator's images \
along the latent segment, beside interval bounds of the same transform applied to the image itself (bilinear interpolation; over the whole range at once, and cut into {} sub-ranges). \
Mean over images of each image's mean width / median of each image's median width.</p><table><tr><th class=\"l\">mutation</th><th>images</th>\
<th>gcert mean/median</th><th>interval mean/median</th><th>interval, {} splits</th><th>gcert time (median)</th><th>interval time (median)</th></tr>",
            crate::precision::SPLITS,
            crate::precision::SPLITS
        );
        for p in &summary.precision {
            let _ = write!(
                h,
                "<tr><td class=\"l\">{}</td><td>{}</td><td>{:.3}/{:.3}</td><td>{:.3}/{:.3}</td><td>{:.3}/{:.3}</td><td>{:.0} ms</td><td>{:.0} ms</td></tr>",
                esc(&p.mutation),
                p.images,
                p.gcert_mean,
                p.gcert_median,
                p.interval_mean,
                p.interval_median,
                p.interval_split_mean,
                p.interval_split_median,
                p.gcert_ms,
                p.interval_ms
            );
        }
        h.push_str("</table>");
    }
    // Plots per mutation.
    h.push_str("<h2>Certified rate and kept fraction</h2>");
    for (m, unit, amount) in &mutations {
        let cells: Vec<&Cell> = summary.cells.iter().filter(|c| &c.mutation == m).collect();
        let mut rates = Vec::new();
        let mut kept = Vec::new();
        for c in &cells {
            let rs: Vec<&Record> = records
                .iter()
                .filter(|r| &r.mutation == m && r.classifier == c.classifier && r.status.evaluated())
                .collect();
            rates.push((
                c.classifier.clone(),
                rs.iter().filter_map(|r| r.max_tolerance).collect::<Vec<f64>>(),
            ));
            kept.push((
                c.classifier.clone(),
                rs.iter().filter_map(|r| r.kept.map(|k| (k.lower, k.upper))).collect::<Vec<_>>(),
            ));
        }
        let _ = write!(
            h,
            "<h3>{}</h3><div class=\"plots\">{}{}</div>",
            esc(m),
            rate_plot(m, unit, *amount, &rates)?,
            kept_plot(m, &kept)?
        );
    }
    // Per image.
    let frames = manifest["settings"]["frames"].as_u64().unwrap_or(9) as f64;
    h.push_str("<h2>Images</h2><p class=\"meta\">The strip shows the generator's images from −amount (left) to +amount (right). \
Under it, one bar per classifier: green where the label is kept, <span class=\"bad\">red</span> where it is not, a black tick at the centre, \
a triangle where the counterexample shown on the right was evaluated.</p>");
    let mut images: Vec<usize> = records.iter().map(|r| r.image).collect();
    images.dedup();
    images.sort_unstable();
    images.dedup();
    for i in images {
        let rs: Vec<&Record> = records.iter().filter(|r| r.image == i).collect();
        let first = rs[0];
        let _ = write!(
            h,
            "<div class=\"img\"><h3>{} (label {}, reconstruction MSE {:.5})</h3>",
            esc(&first.image_name),
            first.label,
            first.reconstruction_mse
        );
        if first.status == Status::Skipped {
            let _ = write!(
                h,
                "<p class=\"na\">skipped: {}</p></div>",
                esc(first.reason.as_deref().unwrap_or(""))
            );
            continue;
        }
        for (m, unit, amount) in &mutations {
            let mrs: Vec<&&Record> = rs.iter().filter(|r| &r.mutation == m).collect();
            let Some(any) = mrs.first() else { continue };
            let Some(strip) = mrs.iter().find_map(|r| r.strip.clone()) else {
                let _ = write!(
                    h,
                    "<div class=\"row\"><span class=\"n\"><b>{}</b></span><span class=\"na\">{}</span></div>",
                    esc(m),
                    esc(any.reason.as_deref().unwrap_or("not evaluated"))
                );
                continue;
            };
            let (uri, w, _) = png_uri(dir, &strip)?;
            // Tiles of a strip are separated by a gap of 2 pixels (its scale); the bars run from the first
            // tile's centre (−amount) to the last one's (+amount).
            let tile = (f64::from(w) - 2.0 * (frames - 1.0)) / frames;
            let (x0, span) = (tile / 2.0, f64::from(w) - tile);
            let pos = |u: f64| span * (u + amount) / (2.0 * amount);
            let _ = write!(
                h,
                "<div class=\"mut\"><div class=\"row\"><span class=\"n\"><b>{}</b></span><img class=\"strip\" alt=\"{} along {}\" src=\"{uri}\" width=\"{w}\"></div>",
                esc(m),
                esc(&first.image_name),
                esc(m)
            );
            for c in &classifiers {
                let Some(r) = mrs.iter().find(|r| &r.classifier == c) else { continue };
                let mut bar = String::new();
                for v in &r.violated {
                    let (a, b) = (pos(v[0]), pos(v[1]));
                    let _ = write!(
                        bar,
                        "<div class=\"v\" style=\"left:{a:.1}px;width:{:.1}px\"></div>",
                        (b - a).max(1.0)
                    );
                }
                let _ = write!(bar, "<div class=\"c\" style=\"left:{:.1}px\"></div>", pos(0.0) - 1.0);
                if let Some(cx) = &r.counterexample {
                    let _ = write!(bar, "<div class=\"x\" style=\"left:{:.1}px\"></div>", pos(cx.at) - 5.0);
                }
                let verdict = match r.status {
                    Status::Certified => format!("<span class=\"ok\">certified ±{amount} {unit}</span>"),
                    Status::Violated => format!(
                        "<span class=\"bad\">violated</span>: kept on ±{} {unit}",
                        opt(r.max_tolerance, 2)
                    ),
                    Status::Unknown => format!("unknown: certified on ±{} {unit}", opt(r.max_tolerance, 2)),
                    Status::Skipped | Status::NotAvailable => {
                        format!("<span class=\"na\">{}</span>", esc(r.reason.as_deref().unwrap_or("")))
                    }
                };
                let cx = match &r.counterexample {
                    Some(cx) => {
                        let (curi, _, _) = png_uri(dir, &cx.image)?;
                        format!(
                            "<span class=\"cx\"><img alt=\"counterexample\" src=\"{curi}\"> predicted {} at {:+.2} {unit}</span>",
                            cx.predicted, cx.at
                        )
                    }
                    None => String::new(),
                };
                let _ = write!(
                    h,
                    "<div class=\"row\"><span class=\"n\">{}</span><div class=\"bar\" style=\"margin-left:{x0:.1}px;width:{span:.1}px\">{bar}</div><span class=\"vd\" style=\"margin-left:{x0:.1}px\">{verdict}</span>{cx}</div>",
                    esc(c)
                );
            }
            h.push_str("</div>");
        }
        h.push_str("</div>");
    }
    h.push_str(CHECK);
    h.push_str("</body></html>\n");
    Ok(h)
}
