// Gemm: the dense matrix products of the training pass, C = op(A) * op(B) or
// C += op(A) * op(B) on the row-major matrices of eigen_types.h, with Eigen's
// packing buffers owned by a GemmWorkspace instead of taken per call.
//
//   GemmWorkspace<float> workspace;           // one per network, for all its products
//   Gemm<float>(x, kNoTranspose, w, kNoTranspose, /*accumulate=*/true, &y, &workspace);
//
// Why: Eigen's product packs its operands into blocks whose sizes it derives
// from the host CPU's cache sizes, and takes those buffers from the stack only
// up to EIGEN_STACK_ALLOCATION_LIMIT bytes; above that every product mallocs
// (and glibc may serve >= 128 KiB through mmap, page-faulting the buffers on
// every call). Whether a given product allocates therefore depends on the
// machine it runs on. A workspace allocates the blocks once for a product's
// shape (rows, cols, depth) and reuses them while the shape stays, so a
// training loop with a stable batch size allocates nothing on any CPU, and the
// blocking (hence the speed) stays the one Eigen chooses for that CPU.
//
// This drives Eigen 3.4's internal GEBP kernel
// (Eigen::internal::general_matrix_matrix_product with a gemm_blocking_space),
// the same one `c.noalias() += a * b` runs, and dispatches as that expression
// does (tiny products coefficient by coefficient, a row or column result
// through GEMV, which need no packing buffers), so the results are
// bit-identical to the expression's. The internals are pinned by the Eigen
// version the project builds with (Debian's 3.4); gemm.cc fails to compile if
// they change.
//
// Thread-safety: a GemmWorkspace is thread-compatible (one product at a time
// per workspace); Gemm is thread-safe for distinct workspaces and outputs.
#ifndef BNSERVE_CORE_GEMM_H_
#define BNSERVE_CORE_GEMM_H_

#include <cstddef>
#include <cstdint>

#include "core/eigen_types.h"

namespace bnserve {

enum GemmOp { kNoTranspose, kTranspose };

template <typename T>
class GemmWorkspace {
 public:
  GemmWorkspace();
  ~GemmWorkspace();
  // A workspace is scratch space, not state: a copy starts empty, and
  // assignment keeps the target's own buffers.
  GemmWorkspace(const GemmWorkspace&);
  GemmWorkspace& operator=(const GemmWorkspace&);
  GemmWorkspace(GemmWorkspace&&) noexcept;
  GemmWorkspace& operator=(GemmWorkspace&&) noexcept;

  // Bytes held by the packing buffers (0 before the first product). At most
  // the largest BoundScalars(rows, cols, depth) * sizeof(T) of the products
  // run so far.
  size_t bytes() const;

  // An upper bound of the scalars a workspace holds for a product of this
  // shape, whatever the CPU's cache sizes: Eigen's blocks are kc * mc and
  // kc * nc with kc <= depth and mc + nc <= rows + cols.
  static int64_t BoundScalars(int64_t rows, int64_t cols, int64_t depth) {
    return depth * (rows + cols);
  }

 private:
  template <typename U>
  friend void Gemm(const ConstMatrixRef<U>& a, GemmOp op_a, const ConstMatrixRef<U>& b,
                   GemmOp op_b, bool accumulate, MatrixT<U>* c, GemmWorkspace<U>* workspace);
  // Grows the buffers to at least `a` and `b` scalars; returns them.
  T* BufferA(Eigen::Index a);
  T* BufferB(Eigen::Index b);

  // Aligned as Eigen's packing needs (EIGEN_MAX_ALIGN_BYTES).
  Eigen::Matrix<T, Eigen::Dynamic, 1> a_;
  Eigen::Matrix<T, Eigen::Dynamic, 1> b_;
};

// *c = op_a(a) * op_b(b) (c resized to the product's shape), or, when
// `accumulate`, *c += op_a(a) * op_b(b).
// REQUIRES: inner dimensions agree; with `accumulate` c already has the
// product's shape; c aliases neither a nor b; workspace != nullptr.
template <typename T>
void Gemm(const ConstMatrixRef<T>& a, GemmOp op_a, const ConstMatrixRef<T>& b, GemmOp op_b,
          bool accumulate, MatrixT<T>* c, GemmWorkspace<T>* workspace);

extern template class GemmWorkspace<float>;
extern template class GemmWorkspace<double>;

}  // namespace bnserve

#endif  // BNSERVE_CORE_GEMM_H_
