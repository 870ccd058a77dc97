//! Constant-velocity Kalman filter on a box's (cx, cy, aspect, h), as in ByteTrack (and DeepSORT).
//!
//! State: `[cx, cy, a, h, vcx, vcy, va, vh]`, measurement: `[cx, cy, a, h]`. Process and
//! measurement noise are proportional to the box height, so the filter behaves the same on
//! normalized boxes and on pixels (the tracker is unit-agnostic). Fixed-size arrays and f64:
//! an 8x8 filter needs no matrix crate, and f64 keeps normalized covariances (~1e-6) exact.

// Small-matrix algebra reads best as the textbook index loops.
#![allow(clippy::needless_range_loop)]

type Vec8 = [f64; 8];
type Mat8 = [[f64; 8]; 8];
type Vec4 = [f64; 4];
type Mat4 = [[f64; 4]; 4];

/// ByteTrack's weights: position noise h/20, velocity noise h/160 per frame.
const STD_WEIGHT_POSITION: f64 = 1.0 / 20.0;
const STD_WEIGHT_VELOCITY: f64 = 1.0 / 160.0;

/// A measurement in the filter's space: centre, aspect (w/h), height.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Xyah {
    pub cx: f64,
    pub cy: f64,
    pub a: f64,
    pub h: f64,
}

impl Xyah {
    pub fn from_ltwh(l: f32, t: f32, w: f32, h: f32) -> Self {
        // A zero-height box would make the aspect infinite: clamp to a tiny positive height.
        let hh = (h as f64).max(1e-9);
        Xyah {
            cx: l as f64 + w as f64 / 2.0,
            cy: t as f64 + h as f64 / 2.0,
            a: (w as f64).max(0.0) / hh,
            h: hh,
        }
    }

    /// Back to (l, t, w, h); negative sizes from a wild prediction are clamped to 0.
    pub fn to_ltwh(self) -> [f32; 4] {
        let h = self.h.max(0.0);
        let w = (self.a * h).max(0.0);
        [
            (self.cx - w / 2.0) as f32,
            (self.cy - h / 2.0) as f32,
            w as f32,
            h as f32,
        ]
    }

    fn as_array(self) -> Vec4 {
        [self.cx, self.cy, self.a, self.h]
    }
}

/// One track's filter state: mean and covariance.
#[derive(Debug, Clone, PartialEq)]
pub struct Kalman {
    pub mean: Vec8,
    pub cov: Mat8,
}

fn diag8(std: [f64; 8]) -> Mat8 {
    let mut m = [[0.0; 8]; 8];
    for i in 0..8 {
        m[i][i] = std[i] * std[i];
    }
    m
}

impl Kalman {
    /// A new track from its first measurement; velocities start at 0 with a wide prior.
    pub fn initiate(z: Xyah) -> Self {
        let (p, v) = (STD_WEIGHT_POSITION * z.h, STD_WEIGHT_VELOCITY * z.h);
        Kalman {
            mean: [z.cx, z.cy, z.a, z.h, 0.0, 0.0, 0.0, 0.0],
            cov: diag8([
                2.0 * p,
                2.0 * p,
                1e-2,
                2.0 * p,
                10.0 * v,
                10.0 * v,
                1e-5,
                10.0 * v,
            ]),
        }
    }

    /// The state as a measurement (where the box is now).
    pub fn xyah(&self) -> Xyah {
        Xyah {
            cx: self.mean[0],
            cy: self.mean[1],
            a: self.mean[2],
            h: self.mean[3],
        }
    }

    /// One frame ahead: x += v; P = F P F^T + Q.
    pub fn predict(&mut self) {
        let h = self.mean[3].abs();
        let (p, v) = (STD_WEIGHT_POSITION * h, STD_WEIGHT_VELOCITY * h);
        for i in 0..4 {
            self.mean[i] += self.mean[i + 4];
        }
        // F = [[I, I], [0, I]]: F P F^T computed blockwise in place.
        let old = self.cov;
        for i in 0..8 {
            for j in 0..8 {
                let mut s = old[i][j];
                if i < 4 {
                    s += old[i + 4][j];
                }
                if j < 4 {
                    s += old[i][j + 4];
                }
                if i < 4 && j < 4 {
                    s += old[i + 4][j + 4];
                }
                self.cov[i][j] = s;
            }
        }
        let q = [p, p, 1e-2, p, v, v, 1e-5, v];
        for (i, qi) in q.iter().enumerate() {
            self.cov[i][i] += qi * qi;
        }
    }

    /// Stops the height and aspect from drifting while a track coasts without measurements
    /// (ByteTrack zeroes the height velocity of lost tracks).
    pub fn freeze_size(&mut self) {
        self.mean[6] = 0.0;
        self.mean[7] = 0.0;
    }

    /// Measurement update with the standard gain K = P H^T S^-1.
    pub fn update(&mut self, z: Xyah) {
        let h = self.mean[3].abs();
        let p = STD_WEIGHT_POSITION * h;
        let r = [p, p, 1e-1, p];
        // S = H P H^T + R: the top-left 4x4 block of P plus R.
        let mut s: Mat4 = [[0.0; 4]; 4];
        for i in 0..4 {
            for j in 0..4 {
                s[i][j] = self.cov[i][j];
            }
            s[i][i] += r[i] * r[i];
        }
        let Some(chol) = cholesky4(&s) else {
            // Not positive definite (degenerate input): restart the filter on the measurement.
            *self = Kalman::initiate(z);
            return;
        };
        // K^T = S^-1 (H P) where H P = the first 4 rows of P (P is symmetric).
        let mut kt = [[0.0; 8]; 4];
        for col in 0..8 {
            let b = [
                self.cov[0][col],
                self.cov[1][col],
                self.cov[2][col],
                self.cov[3][col],
            ];
            let x = chol_solve4(&chol, b);
            for row in 0..4 {
                kt[row][col] = x[row];
            }
        }
        let zz = z.as_array();
        let innov: Vec4 = std::array::from_fn(|i| zz[i] - self.mean[i]);
        for i in 0..8 {
            self.mean[i] += (0..4).map(|k| kt[k][i] * innov[k]).sum::<f64>();
        }
        // P -= K S K^T = K (H P): (K S K^T) = K^T^T S K^T and S K^T = H P.
        let old = self.cov;
        for i in 0..8 {
            for j in 0..8 {
                let ksk: f64 = (0..4).map(|k| kt[k][i] * old[k][j]).sum();
                self.cov[i][j] = old[i][j] - ksk;
            }
        }
    }
}

/// Lower-triangular Cholesky factor of a symmetric positive-definite 4x4 matrix.
fn cholesky4(s: &Mat4) -> Option<Mat4> {
    let mut l = [[0.0; 4]; 4];
    for i in 0..4 {
        for j in 0..=i {
            let sum: f64 = (0..j).map(|k| l[i][k] * l[j][k]).sum();
            if i == j {
                let d = s[i][i] - sum;
                if d.is_nan() || d <= 0.0 {
                    return None;
                }
                l[i][j] = d.sqrt();
            } else {
                l[i][j] = (s[i][j] - sum) / l[j][j];
            }
        }
    }
    Some(l)
}

/// Solves (L L^T) x = b.
fn chol_solve4(l: &Mat4, b: Vec4) -> Vec4 {
    let mut y = [0.0; 4];
    for i in 0..4 {
        y[i] = (b[i] - (0..i).map(|k| l[i][k] * y[k]).sum::<f64>()) / l[i][i];
    }
    let mut x = [0.0; 4];
    for i in (0..4).rev() {
        x[i] = (y[i] - (i + 1..4).map(|k| l[k][i] * x[k]).sum::<f64>()) / l[i][i];
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    fn z(cx: f64, cy: f64, h: f64) -> Xyah {
        Xyah { cx, cy, a: 0.5, h }
    }

    #[test]
    fn ltwh_round_trip() {
        let x = Xyah::from_ltwh(10.0, 20.0, 30.0, 60.0);
        assert_eq!((x.cx, x.cy, x.a, x.h), (25.0, 50.0, 0.5, 60.0));
        assert_eq!(x.to_ltwh(), [10.0, 20.0, 30.0, 60.0]);
    }

    #[test]
    fn predict_moves_by_velocity_and_grows_uncertainty() {
        let mut k = Kalman::initiate(z(100.0, 100.0, 50.0));
        k.mean[4] = 3.0;
        k.mean[5] = -2.0;
        let var_before = k.cov[0][0];
        k.predict();
        assert_eq!((k.mean[0], k.mean[1]), (103.0, 98.0));
        assert!(k.cov[0][0] > var_before);
        // Position/velocity correlation appears after one step.
        assert!(k.cov[0][4] > 0.0);
    }

    #[test]
    fn update_pulls_towards_measurement_and_shrinks_uncertainty() {
        let mut k = Kalman::initiate(z(100.0, 100.0, 50.0));
        k.predict();
        let var_before = k.cov[0][0];
        k.update(z(110.0, 100.0, 50.0));
        assert!(k.mean[0] > 100.0 && k.mean[0] < 110.0, "{}", k.mean[0]);
        assert!(k.cov[0][0] < var_before);
        // The covariance stays symmetric.
        for i in 0..8 {
            for j in 0..8 {
                assert!((k.cov[i][j] - k.cov[j][i]).abs() < 1e-9);
            }
        }
    }

    #[test]
    fn learns_constant_velocity() {
        let mut k = Kalman::initiate(z(0.0, 0.0, 100.0));
        for t in 1..=30 {
            k.predict();
            k.update(z(4.0 * t as f64, 0.0, 100.0));
        }
        assert!((k.mean[4] - 4.0).abs() < 0.2, "vx {}", k.mean[4]);
        k.predict();
        assert!((k.mean[0] - 124.0).abs() < 2.0, "cx {}", k.mean[0]);
    }

    #[test]
    fn scale_invariant() {
        // The same motion in pixels and in normalized units gives the same relative estimate.
        let scale = 1.0 / 640.0;
        let mut px = Kalman::initiate(z(100.0, 100.0, 80.0));
        let mut nz = Kalman::initiate(z(100.0 * scale, 100.0 * scale, 80.0 * scale));
        for t in 1..=10 {
            let x = 100.0 + 5.0 * t as f64;
            px.predict();
            nz.predict();
            px.update(z(x, 100.0, 80.0));
            nz.update(z(x * scale, 100.0 * scale, 80.0 * scale));
        }
        assert!((px.mean[0] * scale - nz.mean[0]).abs() < 1e-9);
        assert!((px.mean[4] * scale - nz.mean[4]).abs() < 1e-9);
    }

    #[test]
    fn degenerate_measurement_does_not_panic() {
        let mut k = Kalman::initiate(z(0.0, 0.0, 0.0));
        k.predict();
        k.update(z(f64::NAN, 0.0, 0.0));
        k.predict();
        let _ = k.xyah().to_ltwh();
    }
}
