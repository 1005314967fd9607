// One call into libtorch's fused Adam/AdamW kernel (`at::_fused_adam_`, `at::_fused_adamw_`)
// for a whole parameter group, which tch 0.26 does not expose. Each `at::Tensor*` is a
// tch `C_tensor` (tch keeps tensors as heap-allocated `at::Tensor`s).
//
// The kernel updates every parameter in one pass over p, grad, m and v, where the op-by-op
// update reads and writes each of them several times. Step counts are one float tensor
// per parameter holding the step being taken (torch.optim increments them before the call).
#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <c10/util/Exception.h>
#include <exception>
#include <string>
#include <vector>

namespace {
std::vector<at::Tensor> list(at::Tensor** ts, int n) {
  std::vector<at::Tensor> out;
  out.reserve(n);
  for (int i = 0; i < n; i++) out.push_back(*ts[i]);
  return out;
}
thread_local std::string last_error;
}  // namespace

extern "C" {
// Returns 0, or 1 with the message available from tgcn_fused_adam_error().
int tgcn_fused_adam(at::Tensor** params, at::Tensor** grads, at::Tensor** m, at::Tensor** v,
                    at::Tensor** steps, int n, double lr, double beta1, double beta2,
                    double weight_decay, double eps, int decoupled) {
  try {
    c10::NoGradGuard no_grad;  // an optimizer update, as torch.optim runs it
    auto p = list(params, n), g = list(grads, n), ms = list(m, n), vs = list(v, n),
         st = list(steps, n);
    std::vector<at::Tensor> max_v;  // amsgrad off
    if (decoupled) {
      at::_fused_adamw_(p, g, ms, vs, max_v, st, lr, beta1, beta2, weight_decay, eps,
                        /*amsgrad=*/false, /*maximize=*/false, c10::nullopt, c10::nullopt);
    } else {
      at::_fused_adam_(p, g, ms, vs, max_v, st, lr, beta1, beta2, weight_decay, eps,
                       /*amsgrad=*/false, /*maximize=*/false, c10::nullopt, c10::nullopt);
    }
    return 0;
  } catch (const std::exception& e) {
    last_error = e.what();
    return 1;
  }
}

const char* tgcn_fused_adam_error() { return last_error.c_str(); }

// Builds one tiny CSR tensor with warnings swallowed: libtorch warns once per process that
// "Sparse CSR tensor support is in beta state" at the first CSR tensor, and every tgcn
// command builds L̃ as one. The notice says nothing about the run, so it is spent here.
void tgcn_spend_csr_beta_warning() {
  struct Swallow : c10::WarningHandler {
    void process(const c10::Warning&) override {}
  } swallow;
  c10::WarningUtils::WarningHandlerGuard guard(&swallow);
  auto t = at::eye(1).to_sparse_csr();
}

// Drops a tensor's gradient (PyTorch's `zero_grad(set_to_none=True)`): the next backward
// then writes the gradient instead of adding it to a zeroed buffer.
void tgcn_clear_grad(at::Tensor* t) { t->mutable_grad().reset(); }
}
