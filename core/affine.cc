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

namespace {

// The length of the depth (fan_in) pieces in which Forward multiplies x * W.
//
// A const product has no workspace of its own, and Eigen packs a product's
// operands into buffers of kc * mc and kc * nc scalars (kc <= depth, mc and nc
// <= the output's sides) that it takes from the stack only up to
// EIGEN_STACK_ALLOCATION_LIMIT bytes; above that every product mallocs, and
// glibc may hand out >= 128 KB through mmap, page-faulting the buffers on
// every call. The seed network's first layer (batch 100, 784 -> 100) is such
// a product: 255 us with fresh mmaps vs 132 us when the depth is split so
// that each piece's buffers fit on the stack, whatever the CPU's cache sizes
// (the bound uses only the output's sides). So split the depth into equal
// pieces whenever that makes the product allocation-free with pieces that
// are still deep enough to run at full speed; else one piece.
Eigen::Index ForwardPiece(Eigen::Index rows, Eigen::Index cols, Eigen::Index depth,
                          size_t scalar_size) {
  const Eigen::Index widest = std::max<Eigen::Index>({rows, cols, 1});
  const Eigen::Index max_piece =
      static_cast<Eigen::Index>(EIGEN_STACK_ALLOCATION_LIMIT / scalar_size) / widest;
  constexpr Eigen::Index kMinPiece = 64;
  if (max_piece >= depth || max_piece < kMinPiece) return depth;
  const Eigen::Index pieces = (depth + max_piece - 1) / max_piece;
  return (depth + pieces - 1) / pieces;
}

// Calls add(start, len) for each depth piece of x * W in order.
template <typename Add>
void ForEachForwardPiece(Eigen::Index rows, Eigen::Index cols, Eigen::Index depth,
                         size_t scalar_size, Add&& add) {
  const Eigen::Index piece = ForwardPiece(rows, cols, depth, scalar_size);
  for (Eigen::Index start = 0; start < depth; start += piece) {
    add(start, std::min(piece, depth - start));
  }
}

}  // namespace

template <typename T>
void Affine<T>::Forward(const ConstMatrixRef<T>& x, MatrixT<T>* out) const {
  assert(x.cols() == weights_.rows());
  out->resize(x.rows(), weights_.cols());
  // Broadcast the bias first and let the product accumulate onto it: one
  // pass over the output instead of two.
  out->rowwise() = bias_.row(0);
  ForEachForwardPiece(x.rows(), weights_.cols(), x.cols(), sizeof(T),
                      [&](Eigen::Index start, Eigen::Index len) {
                        out->noalias() +=
                            x.middleCols(start, len) * weights_.middleRows(start, len);
                      });
}

template <typename T>
void Affine<T>::ForwardTrain(const ConstMatrixRef<T>& x, MatrixT<T>* out,
                             GemmWorkspace<T>* workspace) const {
  assert(x.cols() == weights_.rows());
  out->resize(x.rows(), weights_.cols());
  out->rowwise() = bias_.row(0);
  // The same pieces as Forward, so that training and inference compute the
  // same sums bit for bit.
  ForEachForwardPiece(x.rows(), weights_.cols(), x.cols(), sizeof(T),
                      [&](Eigen::Index start, Eigen::Index len) {
                        Gemm<T>(x.middleCols(start, len), kNoTranspose,
                                weights_.middleRows(start, len), kNoTranspose,
                                /*accumulate=*/true, out, workspace);
                      });
}

template <typename T>
int64_t Affine<T>::TrainingWorkspaceScalars(int64_t batch, int64_t fan_in, int64_t fan_out) {
  using Bound = GemmWorkspace<T>;
  return std::max({Bound::BoundScalars(batch, fan_out, fan_in),    // x * W (pieces: less)
                   Bound::BoundScalars(fan_in, fan_out, batch),    // x^T * dout
                   Bound::BoundScalars(batch, fan_in, fan_out)});  // dout * W^T
}

template <typename T>
void Affine<T>::Backward(const ConstMatrixRef<T>& x, const ConstMatrixRef<T>& dout,
                         MatrixT<T>* dx, GemmWorkspace<T>* workspace) {
  assert(x.rows() == dout.rows());
  assert(x.cols() == weights_.rows() && dout.cols() == weights_.cols());
  Gemm<T>(x, kTranspose, dout, kNoTranspose, /*accumulate=*/false, &weights_grad_, workspace);
  bias_grad_.noalias() = dout.colwise().sum();
  if (dx != nullptr) {
    Gemm<T>(dout, kNoTranspose, weights_, kTranspose, /*accumulate=*/false, dx, workspace);
  }
}

template class Affine<float>;
template class Affine<double>;

}  // namespace bnserve
