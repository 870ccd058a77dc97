//! bench.html (`edgelens bench --html`): one self-contained page beside bench.json and
//! bench.png, for people without a terminal: the backend table, the machine limit, per-stage
//! percentiles and the chart inline as a base64 PNG. No script, no external resource, and a
//! Content-Security-Policy that forbids loading any.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;

use super::report::{BackendResult, Report};

const CSP: &str = "default-src 'none'; img-src data:; style-src 'unsafe-inline'";

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222}\
table{border-collapse:collapse;margin:8px 0 24px}\
th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}\
th{background:#f3f3f3}td.l,th.l{text-align:left}\
img{max-width:100%;border:1px solid #ddd}p.note{color:#555;max-width:60em}";

/// Escapes text for HTML element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// The page, with `png` (the chart's bytes) inline.
pub fn page(r: &Report, png: &[u8]) -> String {
    let mut h = String::with_capacity(64 * 1024 + png.len() * 4 / 3);
    let mut models: Vec<&str> = Vec::new();
    for b in &r.results {
        if !models.contains(&b.model.as_str()) {
            models.push(&b.model);
        }
    }
    if models.is_empty() {
        models.push(&r.model);
    }
    let title = format!("edgelens bench: {}", models.join(", "));
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head><body>\n<h1>{}</h1>\n",
        escape(&title),
        escape(&title)
    );
    let _ = writeln!(
        h,
        "<p>video <code>{}</code>, {} frames per phase, {} cores, {}</p>",
        escape(&r.video),
        r.frames,
        r.cores,
        escape(&r.host)
    );
    backends(&mut h, r);
    let b64 = base64::engine::general_purpose::STANDARD.encode(png);
    let _ = writeln!(
        h,
        "<h2>Chart</h2>\n<img alt=\"decode, ceiling, pipeline and limit fps per row\" \
         src=\"data:image/png;base64,{b64}\">"
    );
    limit(&mut h, r);
    stages(&mut h, r);
    h.push_str("</body></html>\n");
    h
}

fn row_head(h: &mut String, b: &BackendResult) {
    let _ = write!(
        h,
        "<tr><td class=\"l\">{}</td><td class=\"l\">{}</td><td>{}</td>",
        escape(&b.model),
        escape(&b.backend),
        b.threads
    );
}

fn backends(h: &mut String, r: &Report) {
    h.push_str(
        "<h2>Backends</h2>\n<table id=\"backends\"><tr><th class=\"l\">model</th>\
         <th class=\"l\">backend</th><th>threads</th><th>decode fps</th><th>ceiling fps</th>\
         <th>pipeline fps</th><th>pipeline / ceiling</th><th>limit fps</th>\
         <th>pipeline / limit</th><th>start ms</th><th>tune ms</th><th>load ms</th><th>cpu s/frame</th>\
         <th>peak RSS MB</th><th>dropped</th></tr>\n",
    );
    for b in &r.results {
        row_head(h, b);
        let _ = writeln!(
            h,
            "<td>{:.1}</td><td>{:.1}</td><td>{:.1}</td><td>{:.3}</td><td>{:.1}</td>\
             <td>{:.3}</td><td>{:.0}</td><td>{:.0}</td><td>{:.0}</td><td>{:.4}</td>\
             <td>{:.1}</td><td>{}</td></tr>",
            b.decode_fps,
            b.ceiling_fps,
            b.pipeline_fps,
            b.pipeline_over_ceiling,
            b.limit.fps,
            b.pipeline_over_limit,
            b.startup_ms,
            b.tuning_ms,
            b.load_ms,
            b.cpu_s_per_frame,
            b.peak_rss_mb,
            b.dropped
        );
    }
    h.push_str(
        "</table>\n<p class=\"note\">ceiling: the backend alone on one ready tensor. \
         limit: cores / (1-thread inference + decode CPU + preprocess, per frame), what every \
         core running 1-thread inference on its own frames could reach. Measured side by side \
         in one run: read the ratios.</p>\n",
    );
}

fn limit(h: &mut String, r: &Report) {
    h.push_str(
        "<h2>Machine limit</h2>\n<table id=\"limit\"><tr>\
         <th class=\"l\">model</th><th class=\"l\">backend</th><th>threads</th><th>cores</th>\
         <th>1-thread infer ms</th><th>decode CPU ms</th><th>preprocess ms</th>\
         <th>limit fps</th></tr>\n",
    );
    for b in &r.results {
        row_head(h, b);
        let l = &b.limit;
        let _ = writeln!(
            h,
            "<td>{}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td><td>{:.1}</td></tr>",
            l.cores, l.infer_1thread_ms, l.decode_cpu_ms, l.preprocess_ms, l.fps
        );
    }
    h.push_str("</table>\n");
}

fn stages(h: &mut String, r: &Report) {
    h.push_str(
        "<h2>Per-stage times, ms (p50 / p95 / p99)</h2>\n<table id=\"stages\"><tr>\
         <th class=\"l\">model</th><th class=\"l\">backend</th><th>threads</th>\
         <th>ceiling (bare inference)</th><th>preprocess</th><th>inference</th>\
         <th>decode + NMS</th><th>frame to sink</th></tr>\n",
    );
    for b in &r.results {
        row_head(h, b);
        for p in [
            &b.ceiling_ms,
            &b.preprocess_ms,
            &b.infer_ms,
            &b.decode_nms_ms,
            &b.frame_to_sink_ms,
        ] {
            let _ = write!(h, "<td>{:.2} / {:.2} / {:.2}</td>", p.p50, p.p95, p.p99);
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</table>\n");
}

/// Writes `out/bench.html` with the chart at `png` inline. The error names the file.
pub(super) fn write(r: &Report, png: &Path, out: &Path) -> Result<PathBuf, (PathBuf, String)> {
    let bytes = std::fs::read(png).map_err(|e| (png.to_path_buf(), e.to_string()))?;
    let path = out.join("bench.html");
    std::fs::write(&path, page(r, &bytes)).map_err(|e| (path.clone(), e.to_string()))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::limit::machine_limit;
    use crate::bench::report::Percentiles;

    fn pct(p50: f64) -> Percentiles {
        Percentiles {
            p50,
            p95: p50 * 1.5,
            p99: p50 * 2.0,
        }
    }

    fn result(model: &str, threads: usize) -> BackendResult {
        let limit = machine_limit(2, 7.6, 0.4, 0.2);
        BackendResult {
            backend: "ort".into(),
            threads,
            instances: 1,
            load_ms: 80.0,
            decode_fps: 650.0,
            ceiling_fps: 131.5,
            ceiling_ms: pct(7.6),
            pipeline_fps: 130.9,
            pipeline_over_ceiling: 0.995,
            startup_ms: 60.0,
            tuning_ms: 900.0,
            frames: 300,
            dropped: 0,
            preprocess_ms: pct(0.19),
            infer_ms: pct(7.7),
            decode_nms_ms: pct(0.02),
            frame_to_sink_ms: pct(55.5),
            cpu_s_per_frame: 0.0153,
            peak_rss_mb: 171.6,
            model: model.into(),
            pipeline_over_limit: crate::bench::limit::ratio(130.9, &limit),
            pipeline_over_limit_all_cores: 0.0,
            cpu_ms: Default::default(),
            limit,
            track_ms: pct(0.07),
            no_scene: None,
        }
    }

    fn report() -> Report {
        Report {
            model: "ssdlite-person".into(),
            model_version: "1".into(),
            video: "samples/<vtest>.mp4".into(),
            frames: 300,
            host: "AMD EPYC".into(),
            cores: 2,
            results: vec![
                result("ssdlite-person", 1),
                result("ssdlite-person-int8", 2),
            ],
            start: None,
        }
    }

    #[test]
    fn page_is_self_contained_and_has_the_tables_and_the_chart() {
        let png = [0x89u8, b'P', b'N', b'G', 0, 1, 2, 3];
        let h = page(&report(), &png);
        // Nothing that loads from outside: no URL, script, link, frame, or non-data src.
        for banned in [
            "http:", "https:", "//", "<script", "<link", "<iframe", "@import", "url(",
        ] {
            let body = h.replace("<!DOCTYPE html>", "");
            assert!(!body.contains(banned), "found {banned:?}");
        }
        assert_eq!(h.matches("src=").count(), 1);
        assert!(h.contains("src=\"data:image/png;base64,iVBORwABAgM=\""));
        assert!(h.contains(&format!("content=\"{CSP}\"")));
        // The backend table: one row per result, with the ratio to the limit.
        let backends = &h[h.find("id=\"backends\"").unwrap()..];
        let backends = &backends[..backends.find("</table>").unwrap()];
        assert_eq!(backends.matches("<tr>").count(), 3, "{backends}");
        assert!(backends.contains(
            "<td class=\"l\">ssdlite-person-int8</td><td class=\"l\">ort</td><td>2</td>"
        ));
        assert!(
            backends.contains("<td>243.9</td><td>0.537</td>"),
            "{backends}"
        );
        // Per-stage percentiles: one row per result, five stages.
        let stages = &h[h.find("id=\"stages\"").unwrap()..];
        assert_eq!(stages.matches("<tr>").count(), 3);
        assert!(stages.contains("<td>7.70 / 11.55 / 15.40</td><td>0.02 / 0.03 / 0.04</td>"));
        assert!(h.contains("<title>edgelens bench: ssdlite-person, ssdlite-person-int8</title>"));
    }

    #[test]
    fn text_from_outside_is_escaped() {
        let mut r = report();
        r.results[0].model = "<img src=x onerror=alert(1)>".into();
        let h = page(&r, &[]);
        assert!(!h.contains("<img src=x"));
        assert!(h.contains("&lt;img src=x onerror=alert(1)&gt;"));
        assert!(h.contains("samples/&lt;vtest&gt;.mp4"));
        assert_eq!(escape("a&'\""), "a&amp;&#39;&quot;");
    }
}
