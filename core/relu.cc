#include "core/relu.h"

namespace bnserve {

template <typename T>
void Relu<T>::Forward(const ConstMatrixRef<T>& x, MatrixT<T>* y) const {
  y->resize(x.rows(), x.cols());
  y->array() = x.array().max(T(0));
}

template <typename T>
void Relu<T>::Backward(const ConstMatrixRef<T>& y, const ConstMatrixRef<T>& dout,
                       MatrixT<T>* dx) const {
  dx->resize(dout.rows(), dout.cols());
  dx->array() = (y.array() > T(0)).select(dout.array(), T(0));
}

template class Relu<float>;
template class Relu<double>;

}  // namespace bnserve
