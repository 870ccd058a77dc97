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
    match spec.dtype {
        DType::U8 => {
            let mut a = Array4::<u8>::zeros(dims(spec));
            fill(&mut a, pixels, w, h, spec.layout, src_ch, |v, _| v);
            InputTensor::U8(a.into_dyn())
        }
        DType::F32 => {
            let mean = spec.mean.unwrap_or([0.0; 3]);
            let std = spec.std.unwrap_or([1.0; 3]);
            let inv = [1.0 / std[0], 1.0 / std[1], 1.0 / std[2]];
            let mut a = Array4::<f32>::zeros(dims(spec));
            fill(&mut a, pixels, w, h, spec.layout, src_ch, |v, c| {
                (f32::from(v) - mean[c]) * inv[c]
            });
            InputTensor::F32(a.into_dyn())
        }
    }
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
