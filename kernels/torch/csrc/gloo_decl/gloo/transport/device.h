#pragma once
namespace gloo {
namespace transport {
class Device;         // opaque: only held through std::shared_ptr
class UnboundBuffer;  // opaque: only held through std::unique_ptr
}  // namespace transport
}  // namespace gloo
