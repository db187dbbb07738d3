//! Parameters of any Burn module by path, so that the optimizer and checkpoints work on names
//! (`layers.0.self_attn.q_proj.weight`) and need no model type.

use std::collections::BTreeMap;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::prelude::*;
use burn::tensor::Gradients;

use crate::policy::{NamedTensor, NamedTensors};
use crate::{Error, Result};

#[derive(Default)]
struct Path(Vec<String>);

impl Path {
    fn enter(&mut self, name: &str) {
        self.0.push(name.to_string());
    }
    fn exit(&mut self) {
        self.0.pop();
    }
    fn joined(&self) -> String {
        self.0.join(".")
    }
}

struct Collect<'a> {
    path: Path,
    grads: Option<&'a Gradients>,
    out: NamedTensors,
}

impl ModuleVisitor for Collect<'_> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.enter(name);
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.exit();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let tensor = param.val();
        let shape = tensor.dims().to_vec();
        let value = match self.grads {
            None => tensor.detach(),
            Some(grads) => match tensor.grad(grads) {
                Some(grad) => grad,
                // A parameter the loss does not reach is left out: its gradient is zero, and a
                // chunk of the output head reaches only the head.
                None => return,
            },
        };
        let numel = shape.iter().product::<usize>();
        self.out.insert(
            self.path.joined(),
            NamedTensor {
                shape,
                value: value.reshape([numel]),
            },
        );
    }
}

/// The parameter values of `module` by path, detached from any graph.
pub fn parameters<M: Module>(module: &M) -> NamedTensors {
    let mut visitor = Collect {
        path: Path::default(),
        grads: None,
        out: BTreeMap::new(),
    };
    module.visit(&mut visitor);
    visitor.out
}

/// The gradients of `module`'s parameters by path; parameters the loss did not reach are left
/// out.
pub fn gradients<M: Module>(module: &M, grads: &Gradients) -> NamedTensors {
    let mut visitor = Collect {
        path: Path::default(),
        grads: Some(grads),
        out: BTreeMap::new(),
    };
    module.visit(&mut visitor);
    visitor.out
}

struct Replace<'a> {
    path: Path,
    values: &'a NamedTensors,
    device: Device,
    error: Option<Error>,
    /// Parameters missing from `values` keep their value (instead of an error).
    partial: bool,
    replaced: usize,
}

impl ModuleMapper for Replace<'_> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.enter(name);
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.exit();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let name = self.path.joined();
        let Some(new) = self.values.get(&name) else {
            if self.partial {
                return param;
            }
            self.error.get_or_insert(Error::Shape {
                what: "parameters",
                expected: format!("a value for `{name}`"),
                got: "none".into(),
            });
            return param;
        };
        let (id, tensor, mapper) = param.consume();
        let dims = tensor.dims();
        if new.shape != dims.to_vec() {
            self.error.get_or_insert(Error::Shape {
                what: "parameters",
                expected: format!("`{name}` of shape {dims:?}"),
                got: format!("{:?}", new.shape),
            });
            return Param::from_mapped_value(id, tensor, mapper);
        }
        let require_grad = tensor.is_require_grad();
        let value: Tensor<D> = new
            .value
            .clone()
            .detach()
            .to_device(&self.device)
            .reshape(dims);
        let value = value.set_require_grad(require_grad);
        self.replaced += 1;
        Param::from_mapped_value(id, value, mapper)
    }
}

/// `module` with every parameter replaced by the value of the same path in `values`, keeping
/// parameter ids (so optimizer bookkeeping stays valid) and gradient requirements.
pub fn replace_parameters<M: Module>(
    module: M,
    values: &NamedTensors,
    device: &Device,
) -> Result<M> {
    let mut mapper = Replace {
        path: Path::default(),
        values,
        device: device.clone(),
        error: None,
        partial: false,
        replaced: 0,
    };
    let module = module.map(&mut mapper);
    match mapper.error {
        Some(e) => Err(e),
        None => Ok(module),
    }
}

/// `module` with the parameters named in `values` replaced (the others kept, e.g. a frozen
/// base under trained adapters); every name in `values` must be a parameter of `module`.
pub fn replace_some<M: Module>(module: M, values: &NamedTensors, device: &Device) -> Result<M> {
    let mut mapper = Replace {
        path: Path::default(),
        values,
        device: device.clone(),
        error: None,
        partial: true,
        replaced: 0,
    };
    let module = module.map(&mut mapper);
    if let Some(e) = mapper.error {
        return Err(e);
    }
    if mapper.replaced != values.len() {
        let known = parameters(&module);
        let stray = values
            .keys()
            .find(|k| !known.contains_key(*k))
            .cloned()
            .unwrap_or_default();
        return Err(Error::Shape {
            what: "parameters",
            expected: "names of the model's parameters".into(),
            got: format!("`{stray}`"),
        });
    }
    Ok(module)
}

/// Adds `more` into `total` by name (a name missing from `total` is inserted).
pub fn accumulate(total: &mut NamedTensors, more: NamedTensors) {
    for (name, g) in more {
        match total.get_mut(&name) {
            Some(t) => t.value = t.value.clone().add(g.value),
            None => {
                total.insert(name, g);
            }
        }
    }
}

/// `grads` with a zero entry for every parameter of `like` it lacks (a parameter the loss did
/// not reach).
pub fn fill_zeros(mut grads: NamedTensors, like: &NamedTensors) -> NamedTensors {
    for (name, p) in like {
        if !grads.contains_key(name) {
            let zeros = Tensor::zeros([p.value.dims()[0]], &p.value.device().inner());
            grads.insert(
                name.clone(),
                NamedTensor {
                    shape: p.shape.clone(),
                    value: zeros,
                },
            );
        }
    }
    grads
}
