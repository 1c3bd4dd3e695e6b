#include "core/affine.h"

#include <algorithm>
#include <cassert>

namespace bnserve {

template <typename T>
Affine<T>::Affine(int fan_in, int fan_out)
    : weights_(MatrixT<T>::Zero(fan_in, fan_out)),
      bias_(MatrixT<T>::Zero(1, fan_out)),
      weights_grad_(MatrixT<T>::Zero(fan_in, fan_out)),
      bias_grad_(MatrixT<T>::Zero(1, fan_out)) {}

template <typename T>
void Affine<T>::Forward(const ConstMatrixRef<T>& x, MatrixT<T>* out) const {
  assert(x.cols() == weights_.rows());
  out->resize(x.rows(), weights_.cols());
  // Broadcast the bias first and let the product accumulate onto it: one
  // pass over the output instead of two.
  out->rowwise() = bias_.row(0);
  // Eigen packs a product's operands into buffers of kc * mc and kc * nc
  // scalars (kc <= depth, mc and nc <= the output's sides) and takes them from
  // the stack only up to EIGEN_STACK_ALLOCATION_LIMIT bytes; above that every
  // product mallocs, and glibc may hand out >= 128 KB through mmap, page-faulting
  // the buffers on every call. The seed network's first layer (batch 100,
  // 784 -> 100) is such a product: 255 us with fresh mmaps vs 132 us when the
  // depth is split so that each piece's buffers fit on the stack. So split the
  // depth (fan_in) into equal pieces whenever that makes the product
  // allocation-free with pieces that are still deep enough to run at full speed.
  const Eigen::Index depth = x.cols();
  const Eigen::Index widest = std::max(x.rows(), weights_.cols());
  const Eigen::Index max_piece =
      static_cast<Eigen::Index>(EIGEN_STACK_ALLOCATION_LIMIT / sizeof(T)) / widest;
  constexpr Eigen::Index kMinPiece = 64;
  if (max_piece >= depth || max_piece < kMinPiece) {
    out->noalias() += x * weights_;
    return;
  }
  const Eigen::Index pieces = (depth + max_piece - 1) / max_piece;
  const Eigen::Index piece = (depth + pieces - 1) / pieces;
  for (Eigen::Index start = 0; start < depth; start += piece) {
    const Eigen::Index len = std::min(piece, depth - start);
    out->noalias() += x.middleCols(start, len) * weights_.middleRows(start, len);
  }
}

template <typename T>
void Affine<T>::Backward(const ConstMatrixRef<T>& x, const ConstMatrixRef<T>& dout,
                         MatrixT<T>* dx) {
  assert(x.rows() == dout.rows());
  assert(x.cols() == weights_.rows() && dout.cols() == weights_.cols());
  weights_grad_.noalias() = x.transpose() * dout;
  bias_grad_.noalias() = dout.colwise().sum();
  if (dx != nullptr) {
    dx->resize(dout.rows(), weights_.rows());
    dx->noalias() = dout * weights_.transpose();
  }
}

template class Affine<float>;
template class Affine<double>;

}  // namespace bnserve
