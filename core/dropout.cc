#include "core/dropout.h"

#include <cassert>

namespace bnserve {

template <typename T>
Dropout<T>::Dropout(double ratio) : ratio_(ratio) {
  assert(ratio >= 0.0 && ratio < 1.0);
}

template <typename T>
void Dropout<T>::ForwardTrain(const ConstMatrixRef<T>& x, std::mt19937_64* rng,
                              MatrixT<T>* y) {
  assert(rng != nullptr);
  mask_.resize(x.rows(), x.cols());
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  T* mask = mask_.data();  // row-major, so this is the row-major order of x
  for (Eigen::Index i = 0; i < mask_.size(); ++i) {
    mask[i] = uniform(*rng) > ratio_ ? T(1) : T(0);
  }
  y->resize(x.rows(), x.cols());
  y->array() = x.array() * mask_.array();
}

template <typename T>
void Dropout<T>::ForwardInference(const ConstMatrixRef<T>& x, MatrixT<T>* y) const {
  const T keep = static_cast<T>(1.0 - ratio_);
  y->resize(x.rows(), x.cols());
  y->array() = x.array() * keep;
}

template <typename T>
void Dropout<T>::Backward(const ConstMatrixRef<T>& dout, MatrixT<T>* dx) const {
  assert(dout.rows() == mask_.rows() && dout.cols() == mask_.cols());
  dx->resize(dout.rows(), dout.cols());
  dx->array() = dout.array() * mask_.array();
}

template class Dropout<float>;
template class Dropout<double>;

}  // namespace bnserve
