//! `edgelens track`: MOTChallenge detections in, MOTChallenge tracking results out, so any
//! tracker here can be scored with standard tools (py-motmetrics, TrackEval).

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use edgelens::defaults;
use edgelens::track::{self, mot, TrackerConfig};

#[derive(Debug, Args)]
pub struct TrackArgs {
    /// MOTChallenge detections: `frame,-1,x,y,w,h,conf,...` per line, 1-based frames ("-": stdin).
    #[arg(long)]
    detections: PathBuf,
    /// Tracker: bytetrack, sort or iou.
    #[arg(long, default_value = defaults::TRACKER)]
    tracker: String,
    /// Hits before a track is confirmed (N).
    #[arg(long, default_value_t = defaults::TRACK_MIN_HITS)]
    min_hits: u32,
    /// Frames a confirmed track is kept without a match (M).
    #[arg(long, default_value_t = defaults::TRACK_MAX_MISSED)]
    max_missed: u32,
    /// Detections at or above this score are matched first (ByteTrack's high/low split).
    #[arg(long, default_value_t = defaults::TRACK_HIGH_SCORE)]
    high_score: f32,
    /// Detections below this score are ignored.
    #[arg(long, default_value_t = defaults::TRACK_LOW_SCORE)]
    low_score: f32,
    /// Score an unmatched detection needs to start a track.
    #[arg(long, default_value_t = defaults::TRACK_NEW_SCORE)]
    new_track_score: f32,
    /// Least IoU for a match (first stage; SORT and IoU trackers).
    #[arg(long, default_value_t = defaults::TRACK_MATCH_IOU)]
    match_iou: f32,
}

pub fn run(args: TrackArgs) -> anyhow::Result<ExitCode> {
    let config = TrackerConfig {
        min_hits: args.min_hits,
        max_missed: args.max_missed,
        high_score: args.high_score,
        low_score: args.low_score,
        new_track_score: args.new_track_score,
        match_iou: args.match_iou,
        ..TrackerConfig::default()
    };
    let mut tracker = track::by_name(&args.tracker, config)?;
    let frames = mot::by_frame(read(&args.detections)?);

    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut ids = mot::NumericIds::default();
    for (i, dets) in frames.iter().enumerate() {
        let frame = i as u32 + 1;
        for t in tracker.update(dets).tracks {
            // What a MOT result lists: confirmed tracks seen in this frame.
            if t.confirmed && t.missed == 0 {
                let line = mot::result_line(frame, ids.get(&t.id), &t.bbox, t.score);
                writeln!(out, "{line}").context("writing results to stdout")?;
            }
        }
    }
    out.flush().context("writing results to stdout")?;
    tracing::info!(
        tracker = tracker.name(),
        frames = frames.len(),
        tracks = ids.len(),
        "tracking done"
    );
    Ok(ExitCode::SUCCESS)
}

fn read(path: &PathBuf) -> anyhow::Result<Vec<(u32, edgelens::engine::Detection)>> {
    let name = path.display();
    let reader: Box<dyn BufRead> = if path.as_os_str() == "-" {
        Box::new(BufReader::new(std::io::stdin()))
    } else {
        let f = std::fs::File::open(path).with_context(|| format!("cannot open {name}"))?;
        Box::new(BufReader::new(f))
    };
    let mut dets = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let line = line.with_context(|| format!("{name}: line {}: cannot read text", i + 1))?;
        if let Some(d) = mot::parse_line(i + 1, &line).with_context(|| format!("{name}"))? {
            dets.push(d);
        }
    }
    Ok(dets)
}
