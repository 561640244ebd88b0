// SPDX-License-Identifier: Apache-2.0
// Thin C shim over libtorch's c10d backends, for use from Rust next to tch.
//
// Concurrency: collectives must be issued in the same order on every rank; call these
// functions from one thread per process group (the backends are not meant to be driven
// from several threads at once, and interleaving would desynchronise the ranks).
//
// Build defines:
//   ZEST_DIST_NCCL  compile the NCCL backend (needs the CUDA runtime and NCCL headers and
//                   libtorch_cuda.so); without it "nccl" is rejected at runtime.
// The gloo headers are not shipped in the torch wheel; gloo_decl/ provides the few
// declarations ProcessGroupGloo.hpp needs to parse (see the note there).
// Re-check them whenever the torch pin changes: with torch 2.13.0 the sizes this file sees of
// c10d::ProcessGroupGloo (0x1e8 bytes) and its Options (0xb8) equal what libtorch_cpu.so
// allocates, and the shim calls only the Options factory, the constructor and TCPStore.

#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO
#endif
#if defined(ZEST_DIST_NCCL) && !defined(USE_C10D_NCCL)
#define USE_C10D_NCCL
#endif

#include "dist.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef ZEST_DIST_NCCL
#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <exception>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace {

struct ProcessGroup {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::Backend> backend;
  int rank = 0;
  int world_size = 1;
};

void set_err(char* err, size_t err_len, const char* msg) {
  if (err == nullptr || err_len == 0) return;
  std::snprintf(err, err_len, "%s", msg);
}

// Runs `body`, converting any exception into -1 plus a message.
template <typename F>
int guarded(char* err, size_t err_len, F&& body) {
  try {
    body();
    return 0;
  } catch (const c10::Error& e) {
    set_err(err, err_len, e.what_without_backtrace());
  } catch (const std::exception& e) {
    set_err(err, err_len, e.what());
  } catch (...) {
    set_err(err, err_len, "unknown C++ exception");
  }
  return -1;
}

ProcessGroup& as_pg(void* pg) {
  TORCH_CHECK(pg != nullptr, "null process group");
  return *static_cast<ProcessGroup*>(pg);
}

// Tensors at least this large (and contiguous) are reduced in place, one collective
// each; smaller ones are packed into one flat buffer per (device, dtype). Packing costs a
// copy in and out, which only pays off for small tensors (latency-bound collectives).
constexpr int64_t kDirectBytes = int64_t{1} << 20;

// One launched collective: `buf` is what was sent; `members` are the tensors packed
// into it (empty when `buf` is the caller's own tensor).
struct Pending {
  c10::intrusive_ptr<c10d::Work> work;
  at::Tensor buf;
  std::vector<at::Tensor> members;
};

// Launches `launch` over the tensors (in an order that depends only on the arguments, so
// every rank issues the same collectives in the same sequence), waits for all of them,
// then scatters packed results back when `copy_back`.
template <typename Launch>
void run_collective(void* const* tensors, size_t n, bool copy_back, Launch&& launch) {
  TORCH_CHECK(n == 0 || tensors != nullptr, "null tensor array");
  at::NoGradGuard no_grad;
  std::vector<Pending> pending;
  std::vector<std::vector<at::Tensor>> packs;  // small tensors per (device, dtype)
  for (size_t i = 0; i < n; ++i) {
    TORCH_CHECK(tensors[i] != nullptr, "null tensor at index ", i);
    const at::Tensor& t = *static_cast<const at::Tensor*>(tensors[i]);
    TORCH_CHECK(t.defined(), "undefined tensor at index ", i);
    TORCH_CHECK(t.layout() == at::kStrided, "tensor ", i, " is not dense");
    if (t.numel() == 0) continue;
    if (t.is_contiguous() && static_cast<int64_t>(t.nbytes()) >= kDirectBytes) {
      pending.push_back(Pending{nullptr, t, {}});
      continue;
    }
    auto same = [&](const std::vector<at::Tensor>& p) {
      return p[0].device() == t.device() && p[0].scalar_type() == t.scalar_type();
    };
    auto it = std::find_if(packs.begin(), packs.end(), same);
    if (it == packs.end()) it = packs.insert(packs.end(), std::vector<at::Tensor>{});
    it->push_back(t);
  }
  for (auto& members : packs) {
    std::vector<at::Tensor> flat;
    flat.reserve(members.size());
    for (const auto& t : members) flat.push_back(t.reshape({-1}));
    pending.push_back(Pending{nullptr, at::cat(flat), std::move(members)});
  }
  for (auto& p : pending) {
    std::vector<at::Tensor> io{p.buf};
    p.work = launch(io);
  }
  for (auto& p : pending) {
    p.work->wait();
    if (!copy_back) continue;
    int64_t offset = 0;
    for (auto& t : p.members) {
      const int64_t numel = t.numel();
      t.copy_(p.buf.narrow(0, offset, numel).view(t.sizes()));
      offset += numel;
    }
  }
}

}  // namespace

extern "C" {

int zest_dist_init(const char* backend, const char* master_addr, int master_port,
                   int rank, int world_size, int device_index, int timeout_ms,
                   void** out_pg, char* err, size_t err_len) {
  return guarded(err, err_len, [&] {
    TORCH_CHECK(out_pg != nullptr, "out_pg is null");
    *out_pg = nullptr;
    TORCH_CHECK(backend != nullptr && master_addr != nullptr, "null string argument");
    TORCH_CHECK(world_size >= 1 && rank >= 0 && rank < world_size,
                "bad rank ", rank, " for world size ", world_size);
    TORCH_CHECK(master_port > 0 && master_port < 65536, "bad port ", master_port);
    const std::string kind(backend);
    TORCH_CHECK(kind == "gloo" || kind == "nccl", "unknown backend '", kind,
                "' (expected gloo or nccl)");
#ifndef ZEST_DIST_NCCL
    TORCH_CHECK(kind != "nccl", "this build of the zest dist shim has no NCCL support");
    (void)device_index;
#endif
    const auto timeout = std::chrono::milliseconds(
        timeout_ms > 0 ? static_cast<int64_t>(timeout_ms) : int64_t{30 * 60 * 1000});

    c10d::TCPStoreOptions store_opts;
    store_opts.port = static_cast<std::uint16_t>(master_port);
    store_opts.isServer = rank == 0;
    store_opts.numWorkers = static_cast<std::size_t>(world_size);
    store_opts.waitWorkers = true;
    store_opts.timeout = timeout;
    auto tcp = c10::make_intrusive<c10d::TCPStore>(std::string(master_addr), store_opts);
    auto store = c10::make_intrusive<c10d::PrefixStore>("zest/" + kind, tcp);

    auto pg = std::make_unique<ProcessGroup>();
    pg->store = tcp;
    pg->rank = rank;
    pg->world_size = world_size;
    if (kind == "gloo") {
      // Honours GLOO_SOCKET_IFNAME; otherwise binds to the address this host's name
      // resolves to (falling back to loopback), exactly like torch.distributed.
      auto opts = c10d::ProcessGroupGloo::Options::create_default(timeout);
      pg->backend = c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, world_size,
                                                                std::move(opts));
    } else if (kind == "nccl") {
#ifdef ZEST_DIST_NCCL
      TORCH_CHECK(device_index >= 0, "nccl needs a CUDA device index");
      c10::cuda::set_device(static_cast<c10::DeviceIndex>(device_index));
      auto opts = c10d::ProcessGroupNCCL::Options::create();
      opts->timeout = timeout;
      auto nccl = c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank, world_size,
                                                              std::move(opts));
      const at::Device dev(at::kCUDA, static_cast<c10::DeviceIndex>(device_index));
      nccl->setBoundDeviceId(dev);
      nccl->eagerConnectSingleDevice(dev);
      pg->backend = std::move(nccl);
#endif
    }
    *out_pg = pg.release();
  });
}

int zest_dist_all_reduce_sum(void* pg, void* const* tensors, size_t n, char* err,
                             size_t err_len) {
  return guarded(err, err_len, [&] {
    auto& backend = as_pg(pg).backend;
    run_collective(tensors, n, /*copy_back=*/true, [&](std::vector<at::Tensor>& io) {
      c10d::AllreduceOptions opts;
      opts.reduceOp = c10d::ReduceOp::SUM;
      return backend->allreduce(io, opts);
    });
  });
}

int zest_dist_broadcast(void* pg, void* const* tensors, size_t n, int root, char* err,
                        size_t err_len) {
  return guarded(err, err_len, [&] {
    auto& p = as_pg(pg);
    TORCH_CHECK(root >= 0 && root < p.world_size, "bad root rank ", root);
    run_collective(tensors, n, /*copy_back=*/p.rank != root,
                  [&](std::vector<at::Tensor>& io) {
                    c10d::BroadcastOptions opts;
                    opts.rootRank = root;
                    opts.rootTensor = 0;
                    return p.backend->broadcast(io, opts);
                  });
  });
}

int zest_dist_barrier(void* pg, char* err, size_t err_len) {
  return guarded(err, err_len, [&] {
    as_pg(pg).backend->barrier(c10d::BarrierOptions())->wait();
  });
}

int zest_dist_rank(void* pg) {
  return pg == nullptr ? -1 : static_cast<ProcessGroup*>(pg)->rank;
}

int zest_dist_world_size(void* pg) {
  return pg == nullptr ? -1 : static_cast<ProcessGroup*>(pg)->world_size;
}

void zest_dist_free(void* pg) {
  if (pg == nullptr) return;
  auto* p = static_cast<ProcessGroup*>(pg);
  try {
    p->backend->shutdown();  // NCCL: orderly comm teardown; gloo: no-op
  } catch (...) {
  }
  delete p;  // drops the backend (joins gloo worker threads) and the store
}

}  // extern "C"
