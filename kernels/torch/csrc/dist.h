// SPDX-License-Identifier: Apache-2.0
// C API over libtorch's c10d collectives (ProcessGroupGloo / ProcessGroupNCCL).
//
// Every function returns 0 on success and -1 on failure; on failure a NUL-terminated
// message is written into `err` (truncated to `err_len` bytes) when `err` is non-null.
// Tensors are `torch::Tensor*`, i.e. tch's `C_tensor` pointers.
#pragma once
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

// Creates a process group. `backend` is "gloo" (CPU tensors) or "nccl" (CUDA tensors).
// Rank 0 hosts the TCPStore on master_addr:master_port; all ranks connect to it.
// `device_index` is the CUDA device this rank drives (NCCL only; it becomes the current
// device and the communicator is created eagerly on it); pass -1 for gloo.
// `timeout_ms` bounds the rendezvous and every collective (<= 0 means 30 min).
int zest_dist_init(const char* backend, const char* master_addr, int master_port,
                   int rank, int world_size, int device_index, int timeout_ms,
                   void** out_pg, char* err, size_t err_len);

// In-place sum over all ranks. Tensors are grouped by (device, dtype) and each group is
// reduced as a single flat buffer (one collective per group).
int zest_dist_all_reduce_sum(void* pg, void* const* tensors, size_t n, char* err,
                             size_t err_len);

// In-place broadcast from `root` to all ranks, flattened the same way.
int zest_dist_broadcast(void* pg, void* const* tensors, size_t n, int root, char* err,
                        size_t err_len);

int zest_dist_barrier(void* pg, char* err, size_t err_len);

int zest_dist_rank(void* pg);
int zest_dist_world_size(void* pg);

// Destroys the process group (waits for queued work). Null is accepted.
void zest_dist_free(void* pg);

#ifdef __cplusplus
}
#endif
