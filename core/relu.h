// Relu<T>: the rectified linear unit of the book's common/layers.py.
//
// Stateless: Backward is written in terms of the forward output y, which the
// caller keeps, so the layer stores nothing and both methods are const.
// Outputs are resized only when their shape changes. Elementwise, so an
// output may be the same matrix as the input (in-place use is allowed).
//
// Thread-safety: stateless; every method may be called concurrently.
#ifndef BNSERVE_CORE_RELU_H_
#define BNSERVE_CORE_RELU_H_

#include "core/eigen_types.h"

namespace bnserve {

template <typename T>
class Relu {
 public:
  // *y = max(x, 0), elementwise.
  void Forward(const ConstMatrixRef<T>& x, MatrixT<T>* y) const;

  // *dx = dout where y > 0, else 0 (the subgradient at 0 is 0, as in the
  // book), elementwise, where y is the output of Forward.
  // REQUIRES: y and dout have the same shape.
  void Backward(const ConstMatrixRef<T>& y, const ConstMatrixRef<T>& dout,
                MatrixT<T>* dx) const;
};

extern template class Relu<float>;
extern template class Relu<double>;

}  // namespace bnserve

#endif  // BNSERVE_CORE_RELU_H_
