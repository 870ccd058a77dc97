//! tract-onnx: pure Rust, no native library, slower than ONNX Runtime.

use std::sync::Arc;

use tract_linalg::multithread::{multithread_tract_scope, Executor};
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::Factoid;

use super::{check_input_shape, Backend, InputTensor, LoadRequest, Outputs, Spec};
use crate::engine::EngineError;
use crate::model::{DType, ModelFormat};

pub(super) const SPEC: Spec = Spec {
    formats: &[ModelFormat::Onnx],
    load,
    prepare_process: None,
};

type Plan = Arc<TypedRunnableModel>;

struct TractBackend {
    plan: Plan,
    outputs: Vec<String>,
    /// A private pool for --threads > 1; tract runs single-threaded otherwise.
    executor: Option<Executor>,
}

fn load(req: &LoadRequest) -> Result<Box<dyn Backend>, EngineError> {
    let err = |e: TractError| EngineError::ModelLoad {
        path: req.path.clone(),
        message: format!("{e:#}"),
    };
    if !req.path.is_file() {
        return Err(EngineError::ModelLoad {
            path: req.path.clone(),
            message: "file not found".into(),
        });
    }
    let mut model =
        tract_onnx::onnx()
            .model_for_path(&req.path)
            .map_err(|e| EngineError::ModelLoad {
                path: req.path.clone(),
                message: format!(
                    "{e:#} (the file is not a valid ONNX model: truncated or corrupt?)"
                ),
            })?;

    let input_ix = match &req.input_name {
        Some(name) => model
            .input_outlets()
            .map_err(err)?
            .iter()
            .position(|o| model.node(o.node).name == *name)
            .ok_or_else(|| EngineError::ModelLoad {
                path: req.path.clone(),
                message: format!("the graph has no input named '{name}'"),
            })?,
        None => 0,
    };
    let declared = model.input_fact(input_ix).map_err(err)?.clone();
    if !declared.shape.is_open() {
        let dims: Vec<Option<usize>> = declared
            .shape
            .dims()
            .map(|d| {
                d.concretize()
                    .and_then(|t| t.as_i64())
                    .and_then(|v| usize::try_from(v).ok())
            })
            .collect();
        let name = req.input_name.clone().unwrap_or_else(|| "input 0".into());
        check_input_shape(&dims, &req.input_shape, &name)?;
    }
    let dt = match req.input_dtype {
        DType::F32 => f32::datum_type(),
        DType::U8 => u8::datum_type(),
    };
    model = model
        .with_input_fact(
            input_ix,
            InferenceFact::dt_shape(dt, req.input_shape.clone()),
        )
        .map_err(err)?;

    // Run exactly the outputs the decoder reads, in its order.
    let mut outlets = Vec::new();
    for name in &req.outputs {
        let outlet = model
            .find_outlet_label(name)
            .or_else(|| model.node_by_name(name).ok().map(|n| OutletId::new(n.id, 0)))
            .ok_or_else(|| EngineError::ModelLoad {
                path: req.path.clone(),
                message: format!(
                    "the graph has no output named '{name}'; fix the decoder's tensor names in model.toml"
                ),
            })?;
        outlets.push(outlet);
    }
    if !outlets.is_empty() {
        model = model.with_output_outlets(&outlets).map_err(err)?;
    }
    let plan = model
        .into_optimized()
        .and_then(|m| m.into_runnable())
        .map_err(err)?;
    let executor = (req.threads > 1).then(|| Executor::multithread(req.threads));
    Ok(Box::new(TractBackend {
        plan,
        outputs: req.outputs.clone(),
        executor,
    }))
}

impl Backend for TractBackend {
    fn run(&self, input: &InputTensor) -> Result<Outputs, EngineError> {
        let err = |e: TractError| EngineError::Inference {
            message: format!("{e:#}"),
        };
        let tensor: Tensor = match input {
            InputTensor::F32(a) => a.clone().into(),
            InputTensor::U8(a) => a.clone().into(),
        };
        let results = match &self.executor {
            Some(pool) => {
                multithread_tract_scope(pool.clone(), || self.plan.run(tvec!(tensor.into())))
            }
            None => self.plan.run(tvec!(tensor.into())),
        }
        .map_err(err)?;
        let mut out = Outputs::default();
        for (name, value) in self.outputs.iter().zip(results.iter()) {
            let as_f32 = value.cast_to::<f32>().map_err(err)?;
            let view = as_f32.to_plain_array_view::<f32>().map_err(err)?;
            out.0.insert(name.clone(), view.to_owned());
        }
        Ok(out)
    }
}
