//! Adam (Kingma & Ba 2015) with a state that checkpoints can save, so that a resumed run
//! continues exactly where it stopped (tch's built-in optimizer keeps its moments in C++
//! where they cannot be saved).
//!
//!   m ← β1 m + (1 − β1) g,   v ← β2 v + (1 − β2) g²,
//!   θ ← θ − lr · (m / (1 − β1ᵗ)) / (√(v / (1 − β2ᵗ)) + ε)
//!
//! with PyTorch's defaults β1 = 0.9, β2 = 0.999, ε = 1e-8. With `weight_decay` > 0 it is
//! AdamW (Loshchilov & Hutter 2019): θ ← θ · (1 − lr · wd) first, as `torch.optim.AdamW`;
//! the authors' L2 term lives in the loss instead. A learned temperature is not decayed. Parameters are kept in name order, so the state is stable.

use crate::run::checkpoint::OptimizerState;
use anyhow::{ensure, Context, Result};
use std::collections::HashMap;
use std::path::Path;
use tch::nn::VarStore;
use tch::{Kind, Tensor};

pub struct Adam {
    names: Vec<String>,
    params: Vec<Tensor>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    pub steps: i64,
    /// Decoupled weight decay (AdamW); 0 is plain Adam.
    pub weight_decay: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
}

impl Adam {
    pub fn new(vs: &VarStore) -> Adam {
        let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let (names, params): (Vec<String>, Vec<Tensor>) = vars.into_iter().unzip();
        let zeros = |ps: &[Tensor]| ps.iter().map(|p| p.zeros_like()).collect();
        Adam {
            m: zeros(&params),
            v: zeros(&params),
            names,
            params,
            steps: 0,
            weight_decay: 0.0,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }

    /// Zeroes the gradients, back-propagates `loss` and takes one step at `lr`.
    pub fn backward_step(&mut self, loss: &Tensor, lr: f64) {
        for p in &mut self.params {
            p.zero_grad();
        }
        loss.backward();
        self.steps += 1;
        let bc1 = 1.0 - self.beta1.powi(self.steps as i32);
        let bc2 = 1.0 - self.beta2.powi(self.steps as i32);
        tch::no_grad(|| {
            for (((p, m), v), name) in self.params.iter_mut().zip(&mut self.m).zip(&mut self.v).zip(&self.names) {
                let g = p.grad();
                if !g.defined() {
                    continue;
                }
                // A learned log τ is not decayed (that would pull τ towards 1), as CLIP's logit scale.
                if self.weight_decay > 0.0 && !name.ends_with("log_temperature") {
                    let _ = p.g_mul_scalar_(1.0 - lr * self.weight_decay); // AdamW, as torch.optim.AdamW
                }
                // In place, few temporaries: this runs over every parameter every step.
                let _ = m.lerp_(&g, 1.0 - self.beta1); // β1 m + (1 − β1) g
                let _ = v.g_mul_scalar_(self.beta2).addcmul_(&(&g * (1.0 - self.beta2)), &g);
                let mut denom = v.sqrt();
                let _ = denom.g_mul_scalar_(1.0 / bc2.sqrt()).g_add_scalar_(self.eps);
                let _ = p.addcdiv_(&(&*m * (-lr / bc1)), &denom);
            }
        });
    }
}

impl OptimizerState for Adam {
    /// Writes the moments and step count as safetensors (`m.<param>`, `v.<param>`, `steps`).
    fn save(&self, path: &Path) -> Result<()> {
        let mut named: Vec<(String, Tensor)> = Vec::new();
        for (n, (m, v)) in self.names.iter().zip(self.m.iter().zip(&self.v)) {
            named.push((format!("m.{n}"), m.to_device(tch::Device::Cpu)));
            named.push((format!("v.{n}"), v.to_device(tch::Device::Cpu)));
        }
        named.push(("steps".into(), Tensor::from_slice(&[self.steps])));
        Tensor::write_safetensors(&named, path).with_context(|| format!("cannot write {}", path.display()))
    }

    fn load(&mut self, path: &Path) -> Result<()> {
        let mut t: HashMap<String, Tensor> = Tensor::read_safetensors(path)
            .with_context(|| format!("cannot read optimizer state {}", path.display()))?
            .into_iter()
            .collect();
        for (n, (m, v)) in self.names.iter().zip(self.m.iter_mut().zip(&mut self.v)) {
            for (prefix, slot) in [("m", &mut *m), ("v", &mut *v)] {
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
        Ok(())
    }
}
