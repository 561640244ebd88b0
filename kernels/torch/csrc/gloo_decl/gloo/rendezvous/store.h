#pragma once
#include <chrono>
#include <string>
#include <vector>
// GLOO_STORE_HAS_STORE_V2 is deliberately left undefined: the v2 overrides in
// ProcessGroupGloo::GlooStore are then skipped, which only affects inline code this
// shim never instantiates (GlooStore is created inside libtorch_cpu.so).
namespace gloo {
namespace rendezvous {
class Store {
 public:
  virtual ~Store() = default;
  virtual void set(const std::string& key, const std::vector<char>& data) = 0;
  virtual std::vector<char> get(const std::string& key) = 0;
  virtual void wait(const std::vector<std::string>& keys) = 0;
  virtual void wait(const std::vector<std::string>& keys,
                    const std::chrono::milliseconds& timeout) = 0;
};
}  // namespace rendezvous
}  // namespace gloo
