// Affine<T>: the fully connected layer y = x * W + b of the book's
// common/layers.py, with W (fan_in x fan_out) and b (1 x fan_out).
//
// The layer owns its parameters and their gradients but does not copy its
// input: Backward takes the same x that was passed to Forward, so the caller
// (Network) keeps the activations it already has. Buffers passed as outputs
// are resized only when their shape changes, and the training products
// (ForwardTrain, Backward) run in packing buffers the caller owns (one
// GemmWorkspace shared by every layer of a Network), so a training loop with
// a stable batch size does not allocate, whatever the CPU's cache sizes.
//
// Thread-safety: const methods may be called concurrently; Backward and the
// mutable accessors need external synchronization.
#ifndef BNSERVE_CORE_AFFINE_H_
#define BNSERVE_CORE_AFFINE_H_

#include <cstdint>

#include "core/eigen_types.h"
#include "core/gemm.h"

namespace bnserve {

template <typename T>
class Affine {
 public:
  // W and b start at zero (Network draws W from its generator).
  Affine(int fan_in, int fan_out);

  int fan_in() const { return static_cast<int>(weights_.rows()); }
  int fan_out() const { return static_cast<int>(weights_.cols()); }

  MatrixT<T>& weights() { return weights_; }
  const MatrixT<T>& weights() const { return weights_; }
  MatrixT<T>& bias() { return bias_; }
  const MatrixT<T>& bias() const { return bias_; }
  // Gradients from the last Backward (zero before the first one).
  const MatrixT<T>& weights_grad() const { return weights_grad_; }
  MatrixT<T>& weights_grad() { return weights_grad_; }
  const MatrixT<T>& bias_grad() const { return bias_grad_; }

  // *out = x * W + b (b added to every row): the inference pass, const and
  // so safe to run concurrently. Allocation-free apart from resizing *out.
  // REQUIRES: x.cols() == fan_in(); out does not alias x.
  void Forward(const ConstMatrixRef<T>& x, MatrixT<T>* out) const;

  // The same product for the training pass, bit-identical to Forward's, in
  // `workspace`'s packing buffers. Same REQUIRES as Forward.
  void ForwardTrain(const ConstMatrixRef<T>& x, MatrixT<T>* out,
                    GemmWorkspace<T>* workspace) const;

  // An upper bound of the scalars a workspace holds after this layer's
  // training products (ForwardTrain and Backward) for batches of `batch`
  // rows, on any CPU: the largest GemmWorkspace::BoundScalars of them.
  static int64_t TrainingWorkspaceScalars(int64_t batch, int64_t fan_in, int64_t fan_out);

  // Given the x of the matching Forward and dout = dL/dy, stores
  // dW = x^T * dout and db = column sums of dout, and, when dx is not null,
  // *dx = dout * W^T. Pass dx = nullptr when nobody needs the input gradient
  // (the first layer of a network): that skips the largest product.
  // REQUIRES: x.rows() == dout.rows(), x.cols() == fan_in(),
  // dout.cols() == fan_out(); dx aliases neither x nor dout.
  // The products run in `workspace`'s packing buffers.
  void Backward(const ConstMatrixRef<T>& x, const ConstMatrixRef<T>& dout,
                MatrixT<T>* dx, GemmWorkspace<T>* workspace);

 private:
  MatrixT<T> weights_;
  MatrixT<T> bias_;
  MatrixT<T> weights_grad_;
  MatrixT<T> bias_grad_;
};

extern template class Affine<float>;
extern template class Affine<double>;

}  // namespace bnserve

#endif  // BNSERVE_CORE_AFFINE_H_
