// Tanh<T>: the hyperbolic tangent activation (not in the book's layers.py; the
// network config offers it beside ReLU and sigmoid).
//
// Stateless: Backward is written in terms of the forward output y, which the
// caller keeps, so the layer stores nothing and both methods are const.
// Outputs are resized only when their shape changes. Elementwise, so an
// output may be the same matrix as the input (in-place use is allowed).
//
// Thread-safety: stateless; every method may be called concurrently.
#ifndef BNSERVE_CORE_TANH_LAYER_H_
#define BNSERVE_CORE_TANH_LAYER_H_

#include "core/eigen_types.h"

namespace bnserve {

template <typename T>
class Tanh {
 public:
  // *y = tanh(x), elementwise.
  void Forward(const ConstMatrixRef<T>& x, MatrixT<T>* y) const;

  // *dx = dout * (1 - y^2), elementwise, where y is the output of Forward.
  // REQUIRES: y and dout have the same shape.
  void Backward(const ConstMatrixRef<T>& y, const ConstMatrixRef<T>& dout,
                MatrixT<T>* dx) const;
};

extern template class Tanh<float>;
extern template class Tanh<double>;

}  // namespace bnserve

#endif  // BNSERVE_CORE_TANH_LAYER_H_
