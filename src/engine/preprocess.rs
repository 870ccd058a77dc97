//! Turns packed 8-bit pixels at the model's input size into the model's input tensor,
//! and maps boxes from model-input space back to the original frame.

use image::RgbImage;
use ndarray::{Array4, ArrayD};

use super::backends::InputTensor;
// Geometry belongs to the scaled frame, so it lives with the frame in ingest.
use crate::ingest::ScaleTarget;
pub use crate::ingest::{letterbox_size, Geometry};
use crate::model::{ColorOrder, DType, InputSpec, Layout, Resize};

/// Resizes a still image to the model input in Rust (the video path does this in GStreamer).
pub fn resize_image(img: &RgbImage, spec: &InputSpec) -> (RgbImage, Geometry) {
    let geometry = Geometry::new(&ScaleTarget::from(spec), img.width(), img.height());
    let filter = image::imageops::FilterType::Triangle;
    let out = match spec.resize {
        Resize::Stretch => image::imageops::resize(img, spec.width, spec.height, filter),
        Resize::Letterbox => {
            let scaled = image::imageops::resize(
                img,
                geometry.content_w as u32,
                geometry.content_h as u32,
                filter,
            );
            let mut canvas = RgbImage::new(spec.width, spec.height);
            image::imageops::overlay(
                &mut canvas,
                &scaled,
                geometry.content_x as i64,
                geometry.content_y as i64,
            );
            canvas
        }
    };
    (out, geometry)
}

/// Packed RGB (or BGR, per `src_order`) bytes of exactly `spec.width x spec.height` to a tensor.
pub fn to_tensor(pixels: &[u8], src_order: ColorOrder, spec: &InputSpec) -> InputTensor {
    let (w, h) = (spec.width as usize, spec.height as usize);
    debug_assert_eq!(pixels.len(), w * h * 3);
    let swap = src_order != spec.color;
    // Channel c of the model reads source channel src_ch[c].
    let src_ch = if swap { [2, 1, 0] } else { [0, 1, 2] };
    // The video path hands over the model's own channel order, so NHWC without a swap is
    // the per-frame case: a straight pass over the bytes that the compiler vectorizes.
    let straight = spec.layout == Layout::Nhwc && !swap && pixels.len() == w * h * 3;
    match spec.dtype {
        DType::U8 if straight => tensor(spec, pixels.to_vec())
            .map_or_else(|| zero_tensor(spec), |a| InputTensor::U8(a.into_dyn())),
        DType::U8 => {
            let mut a = Array4::<u8>::zeros(dims(spec));
            fill(&mut a, pixels, w, h, spec.layout, src_ch, |v, _| v);
            InputTensor::U8(a.into_dyn())
        }
        DType::F32 => {
            let mean = spec.mean.unwrap_or([0.0; 3]);
            let std = spec.std.unwrap_or([1.0; 3]);
            let inv = [1.0 / std[0], 1.0 / std[1], 1.0 / std[2]];
            if straight {
                return tensor(spec, normalize_nhwc(pixels, mean, inv))
                    .map_or_else(|| zero_tensor(spec), |a| InputTensor::F32(a.into_dyn()));
            }
            let mut a = Array4::<f32>::zeros(dims(spec));
            fill(&mut a, pixels, w, h, spec.layout, src_ch, |v, c| {
                (f32::from(v) - mean[c]) * inv[c]
            });
            InputTensor::F32(a.into_dyn())
        }
    }
}

fn tensor<T>(spec: &InputSpec, data: Vec<T>) -> Option<Array4<T>> {
    Array4::from_shape_vec(dims(spec), data).ok()
}

/// `(v - mean[c]) * inv[c]` over packed pixels, 16 pixels at a time: a block of 48 values
/// is a whole number of pixels, so its per-value constants repeat and need no `% 3`. Each
/// block is computed on the stack and appended, so the output is written once (a zeroed
/// buffer would be written twice: 1 MB more per frame at 300x300).
fn normalize_nhwc(pixels: &[u8], mean: [f32; 3], inv: [f32; 3]) -> Vec<f32> {
    const BLOCK: usize = 48;
    let m: [f32; BLOCK] = std::array::from_fn(|j| mean[j % 3]);
    let k: [f32; BLOCK] = std::array::from_fn(|j| inv[j % 3]);
    let mut out = Vec::with_capacity(pixels.len());
    let mut src = pixels.chunks_exact(BLOCK);
    for p in &mut src {
        let block: [f32; BLOCK] = std::array::from_fn(|j| (f32::from(p[j]) - m[j]) * k[j]);
        out.extend_from_slice(&block);
    }
    let rest = src.remainder().iter().enumerate();
    out.extend(rest.map(|(j, &p)| (f32::from(p) - m[j]) * k[j]));
    out
}

fn dims(spec: &InputSpec) -> (usize, usize, usize, usize) {
    let s = spec.shape();
    (s[0], s[1], s[2], s[3])
}

fn fill<T: Copy>(
    a: &mut Array4<T>,
    pixels: &[u8],
    w: usize,
    h: usize,
    layout: Layout,
    src_ch: [usize; 3],
    f: impl Fn(u8, usize) -> T,
) {
    let Some(out) = a.as_slice_mut() else {
        return;
    };
    match layout {
        Layout::Nhwc => {
            for (o, p) in out.chunks_exact_mut(3).zip(pixels.chunks_exact(3)) {
                for c in 0..3 {
                    o[c] = f(p[src_ch[c]], c);
                }
            }
        }
        Layout::Nchw => {
            let plane = w * h;
            for (i, p) in pixels.chunks_exact(3).enumerate().take(plane) {
                for c in 0..3 {
                    out[c * plane + i] = f(p[src_ch[c]], c);
                }
            }
        }
    }
}

/// An empty tensor of the model's input shape; used for warm-up and the bench ceiling.
pub fn zero_tensor(spec: &InputSpec) -> InputTensor {
    let shape = spec.shape();
    match spec.dtype {
        DType::U8 => InputTensor::U8(ArrayD::zeros(&shape[..])),
        DType::F32 => InputTensor::F32(ArrayD::zeros(&shape[..])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(dtype: DType, layout: Layout) -> InputSpec {
        InputSpec {
            name: None,
            width: 7, // 7x5 pixels: two 48-value blocks and a remainder of 9
            height: 5,
            layout,
            dtype,
            color: ColorOrder::Rgb,
            resize: Resize::Stretch,
            mean: Some([127.5, 100.0, 3.0]),
            std: Some([127.5, 50.0, 0.5]),
        }
    }

    /// The per-element path every layout and order takes, as the reference.
    fn reference(pixels: &[u8], spec: &InputSpec) -> Vec<f32> {
        let mut a = Array4::<f32>::zeros(dims(spec));
        let (mean, std) = (spec.mean.unwrap_or([0.0; 3]), spec.std.unwrap_or([1.0; 3]));
        let inv = [1.0 / std[0], 1.0 / std[1], 1.0 / std[2]];
        fill(&mut a, pixels, 7, 5, spec.layout, [0, 1, 2], |v, c| {
            (f32::from(v) - mean[c]) * inv[c]
        });
        a.iter().copied().collect()
    }

    fn pixels() -> Vec<u8> {
        (0..7 * 5 * 3).map(|i| (i * 37 % 256) as u8).collect()
    }

    #[test]
    fn the_straight_nhwc_path_equals_the_per_element_one_bit_for_bit() {
        let s = spec(DType::F32, Layout::Nhwc);
        let InputTensor::F32(a) = to_tensor(&pixels(), ColorOrder::Rgb, &s) else {
            panic!("f32 model, f32 tensor");
        };
        assert_eq!(a.shape(), &[1, 5, 7, 3]);
        let got: Vec<u32> = a.iter().map(|v| v.to_bits()).collect();
        let want: Vec<u32> = reference(&pixels(), &s)
            .iter()
            .map(|v| v.to_bits())
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn u8_models_get_the_bytes_and_swaps_and_nchw_still_reorder() {
        let p = pixels();
        let InputTensor::U8(a) = to_tensor(&p, ColorOrder::Rgb, &spec(DType::U8, Layout::Nhwc))
        else {
            panic!("u8 model, u8 tensor");
        };
        assert_eq!(a.iter().copied().collect::<Vec<u8>>(), p);
        // BGR source into an RGB model: the first pixel's channels come reversed.
        let InputTensor::U8(b) = to_tensor(&p, ColorOrder::Bgr, &spec(DType::U8, Layout::Nhwc))
        else {
            panic!("u8 model, u8 tensor");
        };
        assert_eq!(
            b.iter().take(3).copied().collect::<Vec<u8>>(),
            [p[2], p[1], p[0]]
        );
        // NCHW: the first plane is every pixel's first channel.
        let s = spec(DType::F32, Layout::Nchw);
        let InputTensor::F32(c) = to_tensor(&p, ColorOrder::Rgb, &s) else {
            panic!("f32 model, f32 tensor");
        };
        assert_eq!(c.shape(), &[1, 3, 5, 7]);
        assert_eq!(c.iter().copied().collect::<Vec<f32>>(), reference(&p, &s));
        assert_eq!(c[[0, 0, 0, 1]], (f32::from(p[3]) - 127.5) * (1.0 / 127.5));
    }
}
