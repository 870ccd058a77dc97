//! Box overlap and track-to-detection assignment (optimal and greedy), shared by the trackers.

use pathfinding::kuhn_munkres::kuhn_munkres;
use pathfinding::matrix::Matrix;

/// A box as (l, t, w, h), in whatever unit the detections use.
pub type Ltwh = [f32; 4];

/// Intersection over union of two (l, t, w, h) boxes; 0 for empty or degenerate boxes.
pub fn iou(a: &Ltwh, b: &Ltwh) -> f32 {
    // f32::min/max skip NaN, so a non-finite box would otherwise get a made-up overlap.
    if !a.iter().chain(b).all(|v| v.is_finite()) {
        return 0.0;
    }
    let iw = (a[0] + a[2]).min(b[0] + b[2]) - a[0].max(b[0]);
    let ih = (a[1] + a[3]).min(b[1] + b[3]) - a[1].max(b[1]);
    if !(iw > 0.0 && ih > 0.0) {
        return 0.0;
    }
    let inter = iw * ih;
    let union = a[2] * a[3] + b[2] * b[3] - inter;
    if union > 0.0 {
        inter / union
    } else {
        0.0
    }
}

/// The outcome of one association stage, as indices into the inputs.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Matches {
    /// (track index, detection index)
    pub pairs: Vec<(usize, usize)>,
    pub unmatched_tracks: Vec<usize>,
    pub unmatched_dets: Vec<usize>,
}

impl Matches {
    fn from_pairs(pairs: Vec<(usize, usize)>, n_tracks: usize, n_dets: usize) -> Self {
        let mut t_used = vec![false; n_tracks];
        let mut d_used = vec![false; n_dets];
        for &(t, d) in &pairs {
            t_used[t] = true;
            d_used[d] = true;
        }
        Matches {
            pairs,
            unmatched_tracks: (0..n_tracks).filter(|&t| !t_used[t]).collect(),
            unmatched_dets: (0..n_dets).filter(|&d| !d_used[d]).collect(),
        }
    }
}

/// IoU of every allowed (track, detection) pair at or above `min_iou`, else 0 (not allowed).
fn gated_iou<F>(tracks: &[Ltwh], dets: &[Ltwh], allowed: F, min_iou: f32) -> Vec<f32>
where
    F: Fn(usize, usize) -> bool,
{
    let mut m = vec![0.0; tracks.len() * dets.len()];
    for (t, tb) in tracks.iter().enumerate() {
        for (d, db) in dets.iter().enumerate() {
            if allowed(t, d) {
                let v = iou(tb, db);
                if v >= min_iou {
                    m[t * dets.len() + d] = v;
                }
            }
        }
    }
    m
}

/// Optimal assignment maximizing total IoU (Hungarian, `pathfinding::kuhn_munkres`). Pairs below
/// `min_iou` or not `allowed` (e.g. other class) weigh 0 and are never returned: with every other
/// weight positive, that equals the gated minimum-cost assignment.
///
/// The gated overlap graph is split into connected components first and each is solved on its
/// own (the optimum decomposes over components): in a frame most boxes overlap one or two
/// others, so 50 objects become ~50 tiny problems instead of one 50x50 (docs/tracking.md).
pub fn optimal<F>(tracks: &[Ltwh], dets: &[Ltwh], allowed: F, min_iou: f32) -> Matches
where
    F: Fn(usize, usize) -> bool,
{
    let (nt, nd) = (tracks.len(), dets.len());
    if nt == 0 || nd == 0 {
        return Matches::from_pairs(Vec::new(), nt, nd);
    }
    let g = gated_iou(tracks, dets, allowed, min_iou);
    let mut pairs = Vec::new();
    for (ts, ds) in components(&g, nt, nd) {
        if ts.len() == 1 && ds.len() == 1 {
            pairs.push((ts[0], ds[0]));
        } else {
            solve(&g, nd, &ts, &ds, &mut pairs);
        }
    }
    Matches::from_pairs(pairs, nt, nd)
}

/// Hungarian on one component (track and detection indices), appending the positive pairs.
fn solve(g: &[f32], nd: usize, ts: &[usize], ds: &[usize], pairs: &mut Vec<(usize, usize)>) {
    // Integer weights (kuhn_munkres needs Ord); 1e6 steps of IoU is finer than any box jitter.
    let w = |t: usize, d: usize| (g[t * nd + d] as f64 * 1e6).round() as i64;
    // kuhn_munkres wants rows <= columns: put the shorter side on the rows.
    let found: Vec<(usize, usize)> = if ts.len() <= ds.len() {
        let m = Matrix::from_fn(ts.len(), ds.len(), |(r, c)| w(ts[r], ds[c]));
        let (_, cols) = kuhn_munkres(&m);
        cols.into_iter()
            .enumerate()
            .map(|(r, c)| (ts[r], ds[c]))
            .collect()
    } else {
        let m = Matrix::from_fn(ds.len(), ts.len(), |(r, c)| w(ts[c], ds[r]));
        let (_, rows) = kuhn_munkres(&m);
        rows.into_iter()
            .enumerate()
            .map(|(r, c)| (ts[c], ds[r]))
            .collect()
    };
    pairs.extend(found.into_iter().filter(|&(t, d)| g[t * nd + d] > 0.0));
}

/// Connected components of the bipartite graph whose edges are the positive entries of `g`
/// (tracks 0..nt, detections nt..nt+nd); only components with both a track and a detection.
fn components(g: &[f32], nt: usize, nd: usize) -> Vec<(Vec<usize>, Vec<usize>)> {
    let mut parent: Vec<usize> = (0..nt + nd).collect();
    fn root(p: &mut [usize], mut x: usize) -> usize {
        while p[x] != x {
            p[x] = p[p[x]];
            x = p[x];
        }
        x
    }
    for t in 0..nt {
        for d in 0..nd {
            if g[t * nd + d] > 0.0 {
                let (a, b) = (root(&mut parent, t), root(&mut parent, nt + d));
                parent[a] = b;
            }
        }
    }
    let mut slot = vec![usize::MAX; nt + nd];
    let mut out: Vec<(Vec<usize>, Vec<usize>)> = Vec::new();
    for x in 0..nt + nd {
        let r = root(&mut parent, x);
        if slot[r] == usize::MAX {
            slot[r] = out.len();
            out.push((Vec::new(), Vec::new()));
        }
        let c = &mut out[slot[r]];
        if x < nt {
            c.0.push(x);
        } else {
            c.1.push(x - nt);
        }
    }
    out.retain(|(ts, ds)| !ts.is_empty() && !ds.is_empty());
    out
}

/// Greedy assignment: repeatedly takes the highest remaining IoU (the naive baseline).
pub fn greedy<F>(tracks: &[Ltwh], dets: &[Ltwh], allowed: F, min_iou: f32) -> Matches
where
    F: Fn(usize, usize) -> bool,
{
    let (nt, nd) = (tracks.len(), dets.len());
    let g = gated_iou(tracks, dets, allowed, min_iou);
    let mut cand: Vec<(f32, usize, usize)> = (0..nt)
        .flat_map(|t| (0..nd).map(move |d| (t, d)))
        .filter(|&(t, d)| g[t * nd + d] > 0.0)
        .map(|(t, d)| (g[t * nd + d], t, d))
        .collect();
    cand.sort_by(|a, b| b.0.total_cmp(&a.0));
    let (mut t_used, mut d_used) = (vec![false; nt], vec![false; nd]);
    let mut pairs = Vec::new();
    for (_, t, d) in cand {
        if !t_used[t] && !d_used[d] {
            t_used[t] = true;
            d_used[d] = true;
            pairs.push((t, d));
        }
    }
    Matches::from_pairs(pairs, nt, nd)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANY: fn(usize, usize) -> bool = |_, _| true;

    #[test]
    fn iou_basics() {
        let a = [0.0, 0.0, 10.0, 10.0];
        assert_eq!(iou(&a, &a), 1.0);
        assert_eq!(iou(&a, &[10.0, 0.0, 10.0, 10.0]), 0.0);
        assert!((iou(&a, &[5.0, 0.0, 10.0, 10.0]) - 1.0 / 3.0).abs() < 1e-6);
        assert_eq!(iou(&[0.0, 0.0, 0.0, 0.0], &[0.0, 0.0, 0.0, 0.0]), 0.0);
        assert_eq!(iou(&a, &[f32::NAN, 0.0, 1.0, 1.0]), 0.0);
    }

    #[test]
    fn optimal_beats_greedy_on_the_classic_case() {
        // Greedy takes the single best pair (t0,d0 = 0.82) and strands t1; optimal keeps both.
        let tracks = [[0.0, 0.0, 10.0, 10.0], [3.0, 0.0, 10.0, 10.0]];
        let dets = [[1.0, 0.0, 10.0, 10.0], [-2.0, 0.0, 10.0, 10.0]];
        let g = greedy(&tracks, &dets, ANY, 0.5);
        let o = optimal(&tracks, &dets, ANY, 0.5);
        assert_eq!(g.pairs.len(), 1, "{g:?}");
        assert_eq!(o.pairs.len(), 2, "{o:?}");
        assert!(o.pairs.contains(&(0, 1)) && o.pairs.contains(&(1, 0)));
    }

    #[test]
    fn components_give_the_same_optimum_as_one_big_problem() {
        // A deterministic scatter of boxes: clusters of overlapping ones and loners.
        let mut x = 12345u64;
        let mut rnd = || {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 33) as f32 / (1u64 << 31) as f32
        };
        for _ in 0..50 {
            let tracks: Vec<Ltwh> = (0..12)
                .map(|_| [rnd() * 200.0, rnd() * 50.0, 30.0, 60.0])
                .collect();
            let dets: Vec<Ltwh> = (0..10)
                .map(|_| [rnd() * 200.0, rnd() * 50.0, 30.0, 60.0])
                .collect();
            let split = optimal(&tracks, &dets, ANY, 0.1);
            let g = gated_iou(&tracks, &dets, ANY, 0.1);
            let mut whole = Vec::new();
            solve(
                &g,
                dets.len(),
                &(0..12).collect::<Vec<_>>(),
                &(0..10).collect::<Vec<_>>(),
                &mut whole,
            );
            let total =
                |p: &[(usize, usize)]| p.iter().map(|&(t, d)| g[t * 10 + d] as f64).sum::<f64>();
            assert!((total(&split.pairs) - total(&whole)).abs() < 1e-4);
        }
    }

    #[test]
    fn gating_and_unmatched() {
        let tracks = [[0.0, 0.0, 10.0, 10.0], [100.0, 0.0, 10.0, 10.0]];
        let dets = [
            [1.0, 0.0, 10.0, 10.0],
            [50.0, 0.0, 10.0, 10.0],
            [0.0, 1.0, 10.0, 10.0],
        ];
        for m in [
            optimal(&tracks, &dets, ANY, 0.3),
            optimal(&dets, &tracks, ANY, 0.3), // more rows than columns
        ] {
            assert_eq!(m.pairs.len(), 1, "{m:?}");
        }
        let m = optimal(&tracks, &dets, ANY, 0.3);
        assert_eq!(m.unmatched_tracks, vec![1]);
        assert_eq!(m.unmatched_dets.len(), 2);
        // A disallowed pair (other class) is never matched, however well it overlaps.
        let m = optimal(&tracks, &dets, |_, d| d != 0 && d != 2, 0.3);
        assert!(m.pairs.is_empty());
        assert_eq!(optimal(&[], &dets, ANY, 0.3).unmatched_dets, vec![0, 1, 2]);
    }
}
