//! Detection on one engine instance: frame or image -> tensor -> backend -> decode -> NMS.

use std::time::{Duration, Instant};

use image::RgbImage;

use super::backends::{self, Backend, InputTensor};
use super::nms;
use super::preprocess::{self, Geometry};
use super::{BBox, Detection, DetectionFilter, Engine, EngineError, StageTimes};
use crate::ingest::Frame;
use crate::model::ColorOrder;

impl Engine {
    /// Detects on a video frame. A frame scaled for this model goes straight to the tensor.
    /// One scaled for a previous model (the first frames after a swap) is adapted here:
    /// rebuilt as an image, swapped to RGB, cut down to the original picture (the old
    /// model's letterbox bars dropped), then resized for this model like a still image, so
    /// its boxes come back relative to the original frame.
    pub fn detect_frame(
        &self,
        frame: &Frame,
        filter: &DetectionFilter,
    ) -> Result<(Vec<Detection>, StageTimes), EngineError> {
        self.detect_frame_on(0, frame, filter)
    }

    /// [`Engine::detect_frame`] on instance `which` (taken modulo the instance count).
    pub fn detect_frame_on(
        &self,
        which: usize,
        frame: &Frame,
        filter: &DetectionFilter,
    ) -> Result<(Vec<Detection>, StageTimes), EngineError> {
        let backend = self.backend(which)?;
        let spec = self.input_spec();
        let g = frame.geometry;
        let (w, h) = (g.input_w as u32, g.input_h as u32);
        if w == spec.width && h == spec.height {
            return self.detect_pixels(backend, &frame.pixels, frame.order, g, filter);
        }
        let mut img = RgbImage::from_raw(w, h, frame.pixels.clone()).ok_or_else(|| {
            EngineError::Inference {
                message: "frame buffer does not match its geometry".into(),
            }
        })?;
        if frame.order == ColorOrder::Bgr {
            img.pixels_mut().for_each(|p| p.0.swap(0, 2));
        }
        let (cx, cy) = (g.content_x as u32, g.content_y as u32);
        let (cw, ch) = (g.content_w as u32, g.content_h as u32);
        if (cx, cy, cw, ch) != (0, 0, w, h) {
            img = image::imageops::crop_imm(&img, cx, cy, cw, ch).to_image();
        }
        self.detect_image_on(backend, &img, filter)
    }

    /// Instance `which` (modulo the instance count); an error on a session-less copy.
    fn backend(&self, which: usize) -> Result<&dyn Backend, EngineError> {
        let n = self.backends.len().max(1);
        match self.backends.get(which % n) {
            Some(b) => Ok(b.as_ref()),
            None => Err(EngineError::Inference {
                message: "the engine's sessions were released for a relayout".into(),
            }),
        }
    }

    /// Detects on a still image of any size: resize in Rust, then the common path.
    pub fn detect_image(
        &self,
        img: &RgbImage,
        filter: &DetectionFilter,
    ) -> Result<(Vec<Detection>, StageTimes), EngineError> {
        self.detect_image_on(self.backend(0)?, img, filter)
    }

    fn detect_image_on(
        &self,
        backend: &dyn Backend,
        img: &RgbImage,
        filter: &DetectionFilter,
    ) -> Result<(Vec<Detection>, StageTimes), EngineError> {
        let t0 = Instant::now();
        let (resized, geometry) = preprocess::resize_image(img, self.input_spec());
        let resize_time = t0.elapsed();
        let (dets, mut times) =
            self.detect_pixels(backend, resized.as_raw(), ColorOrder::Rgb, geometry, filter)?;
        times.preprocess += resize_time;
        Ok((dets, times))
    }

    /// Detects on packed pixels already at the model's input size.
    fn detect_pixels(
        &self,
        backend: &dyn Backend,
        pixels: &[u8],
        order: ColorOrder,
        geometry: Geometry,
        filter: &DetectionFilter,
    ) -> Result<(Vec<Detection>, StageTimes), EngineError> {
        let spec = self.input_spec();
        let expected = spec.width as usize * spec.height as usize * 3;
        if pixels.len() != expected {
            return Err(EngineError::Inference {
                message: format!(
                    "frame has {} bytes, model input {}x{}x3 needs {expected}",
                    pixels.len(),
                    spec.width,
                    spec.height
                ),
            });
        }
        let t0 = Instant::now();
        let tensor = preprocess::to_tensor(pixels, order, spec);
        let preprocess = t0.elapsed();
        let (dets, mut times) = self.detect_tensor(backend, &tensor, geometry, filter)?;
        times.preprocess = preprocess;
        Ok((dets, times))
    }

    /// Runs the backend and decoder on a ready tensor.
    fn detect_tensor(
        &self,
        backend: &dyn Backend,
        tensor: &InputTensor,
        geometry: Geometry,
        filter: &DetectionFilter,
    ) -> Result<(Vec<Detection>, StageTimes), EngineError> {
        let t0 = Instant::now();
        let outputs = backend.run(tensor)?;
        let infer = t0.elapsed();
        let t1 = Instant::now();
        let th = self.thresholds;
        let min_score = filter.min_confidence.unwrap_or(th.min_confidence);
        let raw = self.decoder.decode(&outputs, min_score)?;
        let kept = match th.nms_iou {
            Some(iou) => nms::nms(raw, iou, th.max_detections),
            None => raw,
        };
        let dets = kept
            .into_iter()
            .map(|r| Detection {
                label: self.model.label(r.class),
                class_id: r.class,
                confidence: r.score,
                bbox: BBox::from_corners(geometry.to_frame(r.bbox)),
            })
            .filter(|d| filter.classes.is_empty() || filter.classes.iter().any(|c| c == &d.label))
            .collect();
        Ok((
            dets,
            StageTimes {
                preprocess: Duration::ZERO,
                infer,
                decode: t1.elapsed(),
            },
        ))
    }

    /// The bare backend call on a ready tensor: warm-up, and what `bench` calls the ceiling.
    pub fn infer_only(&self, tensor: &InputTensor) -> Result<(), EngineError> {
        self.infer_only_on(0, tensor)
    }

    /// One bare run of every instance on a zero tensor: a model or layout that loads but
    /// cannot infer (an allocation failure at run time, say) fails here, not on the stream.
    pub fn warm_up(&self) -> Result<(), EngineError> {
        let tensor = preprocess::zero_tensor(self.input_spec());
        (0..self.instances()).try_for_each(|i| self.infer_only_on(i, &tensor))
    }

    /// The bare call on instance `which` (modulo the instance count).
    pub fn infer_only_on(&self, which: usize, tensor: &InputTensor) -> Result<(), EngineError> {
        self.backend(which)?.run(tensor).map(|_| ())
    }

    /// Raw output tensors, for decoder benchmarks and debugging.
    pub fn raw_outputs(&self, tensor: &InputTensor) -> Result<backends::Outputs, EngineError> {
        self.backend(0)?.run(tensor)
    }
}
