//! Adam (Kingma & Ba 2015) with a state that checkpoints can save, so that a resumed run
//! continues exactly where it stopped (tch's built-in optimizer keeps its moments in C++
//! where they cannot be saved).
//!
//!   m ← β1 m + (1 − β1) g,   v ← β2 v + (1 − β2) g²,
//!   θ ← θ − lr · (m / (1 − β1ᵗ)) / (√(v / (1 − β2ᵗ)) + ε)
//!
//! with PyTorch's defaults β1 = 0.9, β2 = 0.999, ε = 1e-8. With `weight_decay` > 0 it is
//! AdamW (Loshchilov & Hutter 2019): θ ← θ · (1 − lr · wd) first, as `torch.optim.AdamW`;
//! the authors' L2 term lives in the loss instead. A learned temperature is not decayed.
//! Parameters are kept in name order, so the state is stable.
//!
//! The update is libtorch's fused kernel (`_fused_adam_` / `_fused_adamw_`, what
//! `torch.optim.Adam(fused=True)` runs), called once per parameter group through
//! `csrc/fused_adam.cpp`: one pass over θ, g, m and v for all parameters, where an op-by-op
//! update reads and writes each tensor several times. Gradients are dropped rather than
//! zeroed before each backward (`zero_grad(set_to_none=True)`), so backward writes them
//! instead of adding them to a zeroed buffer.
//!
//! `train.ema` ([`Adam::set_ema`]) keeps an exponential moving average of the parameters
//! beside the moments, bias-corrected as Adam's moments are: after step t it is the mean of
//! θ_1 … θ_t weighted by d^(t−s), i.e. a_t = d_t·a_{t−1} + (1 − d_t)·θ_t with
//! d_t = 1 − (1 − d)/(1 − dᵗ) (so a_1 = θ_1, and the initialisation carries no weight).
//! [`Adam::swap_ema`] puts the averages in the model for evaluation and checkpoints. The
//! averages are saved with the moments, so a resume continues them.
//!
//! The authors' L2 term c·Σ‖W‖² (`loss.l2`) has the gradient 2c·W. [`Adam::set_l2`] hands
//! it to the kernel as Adam's coupled weight decay (g ← g + 2c·W, the same sum), so the
//! loss only reports the term's value: autograd would build, and back-propagate through,
//! a temporary the size of every penalised matrix on each step.

use crate::run::checkpoint::OptimizerState;
use anyhow::{ensure, Context, Result};
use std::collections::HashMap;
use std::path::Path;
use tch::nn::VarStore;
use tch::{Kind, Tensor};

type CTensor = *mut torch_sys::C_tensor;

extern "C" {
    #[allow(clippy::too_many_arguments)]
    fn tgcn_fused_adam(
        params: *mut CTensor,
        grads: *mut CTensor,
        m: *mut CTensor,
        v: *mut CTensor,
        steps: *mut CTensor,
        n: i32,
        lr: f64,
        beta1: f64,
        beta2: f64,
        weight_decay: f64,
        eps: f64,
        decoupled: i32,
    ) -> i32;
    fn tgcn_fused_adam_error() -> *const std::os::raw::c_char;
    fn tgcn_clear_grad(t: CTensor);
}

pub struct Adam {
    names: Vec<String>,
    params: Vec<Tensor>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    /// Per-parameter step counts as the fused kernel reads them (float scalars, the step
    /// being taken: torch.optim increments them before the call, as here).
    step_counts: Vec<Tensor>,
    pub steps: i64,
    /// Decoupled weight decay (AdamW); 0 is plain Adam.
    pub weight_decay: f64,
    /// Per parameter: the coupled L2 decay 2c of the loss's L2 term (0 when not penalised).
    l2: Vec<f64>,
    beta1: f64,
    beta2: f64,
    eps: f64,
    /// `train.ema`: the decay d and each parameter's moving average, in `params` order.
    ema: Option<(f64, Vec<Tensor>)>,
}

impl Adam {
    pub fn new(vs: &VarStore) -> Adam {
        let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let (names, params): (Vec<String>, Vec<Tensor>) = vars.into_iter().unzip();
        let zeros = |ps: &[Tensor]| ps.iter().map(|p| p.zeros_like()).collect();
        let step_counts = params.iter().map(|p| Tensor::zeros([], (Kind::Float, p.device()))).collect();
        Adam {
            m: zeros(&params),
            v: zeros(&params),
            step_counts,
            l2: vec![0.0; params.len()],
            names,
            params,
            steps: 0,
            weight_decay: 0.0,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            ema: None,
        }
    }

    /// Starts a moving average of the parameters with decay `decay` (in (0, 1)), from their
    /// current values.
    pub fn set_ema(&mut self, decay: f64) {
        self.ema = Some((decay, self.params.iter().map(|p| p.detach().copy()).collect()));
    }

    /// Exchanges the parameters with their moving averages, in place (a second call swaps
    /// them back); without `set_ema`, nothing.
    pub fn swap_ema(&mut self) {
        if let Some((_, avg)) = &mut self.ema {
            tch::no_grad(|| {
                for (a, p) in avg.iter_mut().zip(&mut self.params) {
                    let theta = p.copy();
                    p.copy_(a);
                    a.copy_(&theta);
                }
            });
        }
    }

    /// The moving averages (`set_ema`), in parameter-name order.
    pub fn ema(&self) -> Option<&[Tensor]> {
        self.ema.as_ref().map(|(_, a)| a.as_slice())
    }

    /// Adds the gradient of `coefficient`·Σ‖W‖² over `penalised` (tensors of this
    /// optimizer's var store) to every step; the loss then carries only the term's value.
    pub fn set_l2(&mut self, penalised: &[&Tensor], coefficient: f64) -> Result<()> {
        for t in penalised {
            let j = self.params.iter().position(|p| p.data_ptr() == t.data_ptr());
            let j = j.context("an L2-penalised tensor is not a parameter of the optimizer")?;
            self.l2[j] = 2.0 * coefficient;
        }
        Ok(())
    }

    /// Drops the gradients, back-propagates `loss` and takes one step at `lr`.
    pub fn backward_step(&mut self, loss: &Tensor, lr: f64) -> Result<()> {
        for p in &mut self.params {
            // SAFETY: `p` is a live tch tensor, i.e. a valid `at::Tensor*`.
            unsafe { tgcn_clear_grad(p.as_mut_ptr()) };
        }
        loss.backward();
        self.steps += 1;
        // One kernel call per group of (decoupled decay, coupled L2 decay). A learned log τ
        // is not decayed (decay would pull τ towards 1, as CLIP's logit scale). Parameters
        // without a gradient are left alone.
        let mut groups: Vec<((f64, f64), Vec<usize>)> = Vec::new();
        let mut grads: Vec<Option<Tensor>> = Vec::with_capacity(self.params.len());
        for (j, (p, name)) in self.params.iter().zip(&self.names).enumerate() {
            let mut g = p.grad();
            if !g.defined() {
                grads.push(None);
                continue;
            }
            let _ = self.step_counts[j].fill_(self.steps as f64);
            let wd = if name.ends_with("log_temperature") { 0.0 } else { self.weight_decay };
            let mut l2 = self.l2[j];
            if wd > 0.0 && l2 > 0.0 {
                // AdamW's kernel has no coupled decay: add the L2 gradient by hand.
                let _ = tch::no_grad(|| g.g_add_(&(p * l2)));
                l2 = 0.0;
            }
            grads.push(Some(g));
            match groups.iter_mut().find(|(k, _)| *k == (wd, l2)) {
                Some((_, members)) => members.push(j),
                None => groups.push(((wd, l2), vec![j])),
            }
        }
        for ((wd, l2), group) in &groups {
            let ptrs = |ts: &mut [Tensor]| group.iter().map(|&j| ts[j].as_mut_ptr()).collect::<Vec<CTensor>>();
            let (mut p, mut m, mut v) = (ptrs(&mut self.params), ptrs(&mut self.m), ptrs(&mut self.v));
            let mut st = ptrs(&mut self.step_counts);
            let mut g: Vec<CTensor> =
                group.iter().map(|&j| grads[j].as_mut().expect("grouped params have grads").as_mut_ptr()).collect();
            let (decay, decoupled) = if *wd > 0.0 { (*wd, 1) } else { (*l2, 0) };
            // SAFETY: every pointer is a live tensor owned by `self` or `grads` for the call;
            // the lists have `group.len()` entries each.
            let rc = unsafe {
                tgcn_fused_adam(
                    p.as_mut_ptr(),
                    g.as_mut_ptr(),
                    m.as_mut_ptr(),
                    v.as_mut_ptr(),
                    st.as_mut_ptr(),
                    group.len() as i32,
                    lr,
                    self.beta1,
                    self.beta2,
                    decay,
                    self.eps,
                    decoupled,
                )
            };
            if rc != 0 {
                // SAFETY: the shim returns a NUL-terminated message that lives until its next call.
                let msg = unsafe { std::ffi::CStr::from_ptr(tgcn_fused_adam_error()) };
                anyhow::bail!("libtorch's fused Adam failed: {}", msg.to_string_lossy());
            }
        }
        if let Some((decay, avg)) = &mut self.ema {
            let d = 1.0 - (1.0 - *decay) / (1.0 - decay.powi(self.steps as i32));
            tch::no_grad(|| {
                for (a, p) in avg.iter_mut().zip(&self.params) {
                    // a ← a + (1 − d)(θ − a) = d·a + (1 − d)·θ
                    let _ = a.lerp_(p, 1.0 - d);
                }
            });
        }
        Ok(())
    }
}

impl OptimizerState for Adam {
    /// Writes the moments and step count as safetensors (`m.<param>`, `v.<param>`, `steps`),
    /// and the moving averages (`ema.<param>`) with `set_ema`.
    fn save(&self, path: &Path) -> Result<()> {
        let mut named: Vec<(String, Tensor)> = Vec::new();
        for (n, (m, v)) in self.names.iter().zip(self.m.iter().zip(&self.v)) {
            named.push((format!("m.{n}"), m.to_device(tch::Device::Cpu)));
            named.push((format!("v.{n}"), v.to_device(tch::Device::Cpu)));
        }
        if let Some(avg) = self.ema() {
            for (n, a) in self.names.iter().zip(avg) {
                named.push((format!("ema.{n}"), a.to_device(tch::Device::Cpu)));
            }
        }
        named.push(("steps".into(), Tensor::from_slice(&[self.steps])));
        Tensor::write_safetensors(&named, path).with_context(|| format!("cannot write {}", path.display()))
    }

    fn load(&mut self, path: &Path) -> Result<()> {
        let mut t: HashMap<String, Tensor> = Tensor::read_safetensors(path)
            .with_context(|| format!("cannot read optimizer state {}", path.display()))?
            .into_iter()
            .collect();
        let mut no_ema: Vec<Tensor> = Vec::new();
        let avg = self.ema.as_mut().map_or(&mut no_ema, |(_, a)| a);
        let mut avg = avg.iter_mut();
        for (n, (m, v)) in self.names.iter().zip(self.m.iter_mut().zip(&mut self.v)) {
            let mut slots = vec![("m", &mut *m), ("v", &mut *v)];
            if let Some(a) = avg.next() {
                slots.push(("ema", a));
            }
            for (prefix, slot) in slots {
                let key = format!("{prefix}.{n}");
                let src = t.remove(&key).with_context(|| format!("{} lacks {key}", path.display()))?;
                ensure!(
                    src.size() == slot.size(),
                    "{}: {key} has shape {:?}, want {:?}",
                    path.display(),
                    src.size(),
                    slot.size()
                );
                tch::no_grad(|| slot.copy_(&src));
            }
        }
        let steps = t.remove("steps").with_context(|| format!("{} lacks steps", path.display()))?;
        self.steps = steps.to_kind(Kind::Int64).int64_value(&[0]);
        for c in &mut self.step_counts {
            let _ = c.fill_(self.steps as f64);
        }
        Ok(())
    }
}
