// Declaration-only stand-in for the gloo headers that the PyPI torch wheel does not ship.
// It only lets <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp> parse; the real gloo
// code is compiled into libtorch_cpu.so. Never instantiate or subclass these types here.
#pragma once
#include <chrono>
namespace gloo {
class Context {
 public:
  void setTimeout(std::chrono::milliseconds timeout);  // defined in libtorch_cpu.so
};
}  // namespace gloo
