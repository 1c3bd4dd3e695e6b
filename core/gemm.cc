#include "core/gemm.h"

#include <cassert>
#include <utility>

#include <Eigen/Core>

namespace bnserve {
namespace {

using Eigen::Index;

// Eigen's blocking for a row-major destination (gemm_blocking_space's sizes:
// a row-major product runs transposed, so mc comes from cols and nc from
// rows), with the buffers given by a GemmWorkspace instead of allocated.
template <typename T>
class WorkspaceBlocking : public Eigen::internal::level3_blocking<T, T> {
 public:
  WorkspaceBlocking(Index rows, Index cols, Index depth) {
    this->m_mc = cols;
    this->m_nc = rows;
    this->m_kc = depth;
    Eigen::internal::computeProductBlockingSizes<T, T, /*KcFactor=*/1, Index>(
        this->m_kc, this->m_mc, this->m_nc, /*num_threads=*/1);
  }
  Index size_a() const { return this->m_mc * this->m_kc; }
  Index size_b() const { return this->m_kc * this->m_nc; }
  void Use(T* a, T* b) {
    this->m_blockA = a;
    this->m_blockB = b;
  }
};

// The GEBP product res(rows x cols, row-major) += lhs * rhs, operands in the
// given storage orders: what Eigen's `res.noalias() += lhs * rhs` runs for
// dynamic float/double matrices.
template <typename T, int LhsOrder, int RhsOrder>
void RunProduct(Index rows, Index cols, Index depth, const T* lhs, Index lhs_stride,
                const T* rhs, Index rhs_stride, T* res, Index res_stride,
                WorkspaceBlocking<T>* blocking) {
  Eigen::internal::general_matrix_matrix_product<Index, T, LhsOrder, false, T, RhsOrder, false,
                                                 Eigen::RowMajor, 1>::run(rows, cols, depth,
                                                                          lhs, lhs_stride, rhs,
                                                                          rhs_stride, res, 1,
                                                                          res_stride, T(1),
                                                                          *blocking);
}

// The product as Eigen's own expression, for the shapes where Eigen does not
// run GEBP: a coefficient-based (lazy) product for tiny ones, GEMV when the
// result is a row or a column, nothing when it is empty.
template <typename T>
void EigenProduct(const ConstMatrixRef<T>& a, GemmOp op_a, const ConstMatrixRef<T>& b,
                  GemmOp op_b, bool accumulate, MatrixT<T>* c) {
  auto run = [&](const auto& lhs, const auto& rhs) {
    if (accumulate) {
      c->noalias() += lhs * rhs;
    } else {
      c->noalias() = lhs * rhs;
    }
  };
  if (op_a == kNoTranspose && op_b == kNoTranspose) {
    run(a, b);
  } else if (op_a == kTranspose && op_b == kNoTranspose) {
    run(a.transpose(), b);
  } else if (op_a == kNoTranspose && op_b == kTranspose) {
    run(a, b.transpose());
  } else {
    run(a.transpose(), b.transpose());
  }
}

}  // namespace

template <typename T>
GemmWorkspace<T>::GemmWorkspace() = default;
template <typename T>
GemmWorkspace<T>::~GemmWorkspace() = default;
template <typename T>
GemmWorkspace<T>::GemmWorkspace(const GemmWorkspace&) {}
template <typename T>
GemmWorkspace<T>& GemmWorkspace<T>::operator=(const GemmWorkspace&) {
  return *this;
}
template <typename T>
GemmWorkspace<T>::GemmWorkspace(GemmWorkspace&&) noexcept = default;
template <typename T>
GemmWorkspace<T>& GemmWorkspace<T>::operator=(GemmWorkspace&&) noexcept = default;

template <typename T>
size_t GemmWorkspace<T>::bytes() const {
  return static_cast<size_t>(a_.size() + b_.size()) * sizeof(T);
}

template <typename T>
T* GemmWorkspace<T>::BufferA(Index a) {
  if (a_.size() < a) a_.resize(a);
  return a_.data();
}

template <typename T>
T* GemmWorkspace<T>::BufferB(Index b) {
  if (b_.size() < b) b_.resize(b);
  return b_.data();
}

template <typename T>
void Gemm(const ConstMatrixRef<T>& a, GemmOp op_a, const ConstMatrixRef<T>& b, GemmOp op_b,
          bool accumulate, MatrixT<T>* c, GemmWorkspace<T>* workspace) {
  const Index rows = op_a == kNoTranspose ? a.rows() : a.cols();
  const Index depth = op_a == kNoTranspose ? a.cols() : a.rows();
  const Index cols = op_b == kNoTranspose ? b.cols() : b.rows();
  assert(depth == (op_b == kNoTranspose ? b.rows() : b.cols()));
  assert(workspace != nullptr);
  if (accumulate) {
    assert(c->rows() == rows && c->cols() == cols);
  } else {
    c->resize(rows, cols);
  }
  // Eigen's own dispatch (GeneralMatrixMatrix.h), so that the result is
  // bit-identical to `c.noalias() (+)= op_a(a) * op_b(b)` for every shape.
  if (rows + cols + depth < EIGEN_GEMM_TO_COEFFBASED_THRESHOLD || rows <= 1 || cols <= 1 ||
      depth == 0) {
    EigenProduct(a, op_a, b, op_b, accumulate, c);
    return;
  }
  if (!accumulate) c->setZero();
  WorkspaceBlocking<T> blocking(rows, cols, depth);
  blocking.Use(workspace->BufferA(blocking.size_a()), workspace->BufferB(blocking.size_b()));
  // A row-major operand read transposed is the same buffer read column-major.
  const T* pa = a.data();
  const T* pb = b.data();
  const Index sa = a.outerStride();
  const Index sb = b.outerStride();
  T* pc = c->data();
  const Index sc = c->outerStride();
  if (op_a == kNoTranspose && op_b == kNoTranspose) {
    RunProduct<T, Eigen::RowMajor, Eigen::RowMajor>(rows, cols, depth, pa, sa, pb, sb, pc, sc,
                                                    &blocking);
  } else if (op_a == kTranspose && op_b == kNoTranspose) {
    RunProduct<T, Eigen::ColMajor, Eigen::RowMajor>(rows, cols, depth, pa, sa, pb, sb, pc, sc,
                                                    &blocking);
  } else if (op_a == kNoTranspose && op_b == kTranspose) {
    RunProduct<T, Eigen::RowMajor, Eigen::ColMajor>(rows, cols, depth, pa, sa, pb, sb, pc, sc,
                                                    &blocking);
  } else {
    RunProduct<T, Eigen::ColMajor, Eigen::ColMajor>(rows, cols, depth, pa, sa, pb, sb, pc, sc,
                                                    &blocking);
  }
}

template class GemmWorkspace<float>;
template class GemmWorkspace<double>;
template void Gemm<float>(const ConstMatrixRef<float>&, GemmOp, const ConstMatrixRef<float>&,
                          GemmOp, bool, MatrixT<float>*, GemmWorkspace<float>*);
template void Gemm<double>(const ConstMatrixRef<double>&, GemmOp, const ConstMatrixRef<double>&,
                           GemmOp, bool, MatrixT<double>*, GemmWorkspace<double>*);

}  // namespace bnserve
