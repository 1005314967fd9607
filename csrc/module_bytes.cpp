// A TorchScript module serialised into memory (`Module::save(std::ostream&)`), so that the
// caller writes the bytes itself. libtorch's file writer (`Module::save(filename)`) throws
// from a destructor when the disk fills, which ends the process (std::terminate) before any
// caller can report the file; writing into a string stream cannot fail that way.
#include <torch/script.h>
#include <cstddef>
#include <exception>
#include <sstream>
#include <string>

namespace {
thread_local std::string last_error;
}  // namespace

extern "C" {
// Calls sink(ctx, bytes, len) once with the serialised module and returns 0, or returns 1
// with the message available from tgcn_module_bytes_error().
int tgcn_module_bytes(void* module, void (*sink)(void*, const char*, size_t), void* ctx) {
  try {
    std::ostringstream out;
    static_cast<torch::jit::Module*>(module)->save(out);
    const std::string bytes = out.str();
    sink(ctx, bytes.data(), bytes.size());
    return 0;
  } catch (const std::exception& e) {
    last_error = e.what();
    return 1;
  }
}

const char* tgcn_module_bytes_error() { return last_error.c_str(); }
}
