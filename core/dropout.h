// Dropout<T>: the book's Dropout layer (common/layers.py), inverted-free:
//   train:     mask = uniform(0, 1) > ratio, y = x * mask
//   inference: y = x * (1 - ratio)
// The mask of the last ForwardTrain is kept for Backward. Uniforms are drawn
// from the caller's generator in row-major order of x, one per element.
//
// Thread-safety: const methods may be called concurrently; ForwardTrain
// needs external synchronization.
#ifndef BNSERVE_CORE_DROPOUT_H_
#define BNSERVE_CORE_DROPOUT_H_

#include <random>

#include "core/eigen_types.h"

namespace bnserve {

template <typename T>
class Dropout {
 public:
  // REQUIRES: 0 <= ratio < 1.
  explicit Dropout(double ratio);

  double ratio() const { return ratio_; }

  // Draws a new mask from *rng and sets *y = x * mask.
  // REQUIRES: rng is not null; y does not alias x.
  void ForwardTrain(const ConstMatrixRef<T>& x, std::mt19937_64* rng, MatrixT<T>* y);

  // *y = x * (1 - ratio). May be used in place.
  void ForwardInference(const ConstMatrixRef<T>& x, MatrixT<T>* y) const;

  // *dx = dout * mask of the last ForwardTrain. May be used in place.
  // REQUIRES: dout has the shape of that ForwardTrain's x.
  void Backward(const ConstMatrixRef<T>& dout, MatrixT<T>* dx) const;

  // 1 where the last ForwardTrain kept the element, 0 where it dropped it.
  const MatrixT<T>& mask() const { return mask_; }

 private:
  double ratio_;
  MatrixT<T> mask_;
};

extern template class Dropout<float>;
extern template class Dropout<double>;

}  // namespace bnserve

#endif  // BNSERVE_CORE_DROPOUT_H_
