// BatchNorm<T>: the book's BatchNormalization layer (common/layers.py, used by
// MultiLayerNetExtend in section 6.3) over a (batch x features) matrix.
//
//   train:     mu = mean(x), var = mean((x - mu)^2) (biased), std = sqrt(var + eps),
//              xn = (x - mu) / std, y = gamma * xn + beta, and
//              running = momentum * running + (1 - momentum) * batch statistic
//   inference: the same normalization with running_mean / running_var instead of
//              the batch statistics: a fixed per-feature affine map, so every row
//              is transformed independently of the rest of the batch.
//
// Differences from the book, on purpose:
// - running_var starts at 1, not 0 (running_mean starts at 0 as in the book).
//   With the book's 0, inference before enough training divides by sqrt(eps)
//   and blows activations up by ~1000x; with 1 an untrained layer is the identity
//   followed by gamma/beta. After training the two converge to the same value.
// - The book reshapes 4-D input; this layer only ever sees 2-D batches.
// - Backward uses the book's formulas algebraically simplified:
//   dx = gamma / std * (dout - dbeta / N - xn * dgamma / N), which equals the
//   book's dxc/dstd/dvar/dmu chain exactly in real arithmetic, computed in two
//   fused passes (the column sums, then dx).
// - xn is computed as (x - mu) * (1 / std): one division per feature instead
//   of one per element (differs from the division by rounding only).
//
// A train-mode forward needs a batch of at least 2 rows: the variance of one
// row is 0 and its normalized value carries no information (the book silently
// returns 0 / sqrt(eps)); we return InvalidArgument instead.
//
// Thread-safety: const methods may be called concurrently; ForwardTrain,
// Backward and the mutable accessors need external synchronization.
#ifndef BNSERVE_CORE_BATCH_NORM_H_
#define BNSERVE_CORE_BATCH_NORM_H_

#include "absl/status/status.h"
#include "core/eigen_types.h"

namespace bnserve {

template <typename T>
class BatchNorm {
 public:
  // gamma = 1, beta = 0, running_mean = 0, running_var = 1, all 1 x features.
  // REQUIRES: features > 0, 0 <= momentum < 1, eps > 0.
  BatchNorm(int features, double momentum = 0.9, double eps = 1e-6);

  int features() const { return static_cast<int>(gamma_.cols()); }
  double momentum() const { return momentum_; }
  double eps() const { return eps_; }

  MatrixT<T>& gamma() { return gamma_; }
  const MatrixT<T>& gamma() const { return gamma_; }
  MatrixT<T>& beta() { return beta_; }
  const MatrixT<T>& beta() const { return beta_; }
  MatrixT<T>& running_mean() { return running_mean_; }
  const MatrixT<T>& running_mean() const { return running_mean_; }
  MatrixT<T>& running_var() { return running_var_; }
  const MatrixT<T>& running_var() const { return running_var_; }
  // Gradients from the last Backward (zero before the first one).
  const MatrixT<T>& gamma_grad() const { return gamma_grad_; }
  const MatrixT<T>& beta_grad() const { return beta_grad_; }

  // Train mode: normalizes with the batch statistics, updates the running
  // statistics and keeps what Backward needs.
  // InvalidArgument (nothing changed) if x.rows() < 2 or x.cols() != features().
  // REQUIRES: y does not alias x.
  absl::Status ForwardTrain(const ConstMatrixRef<T>& x, MatrixT<T>* y);

  // The train-mode output for x (bit-identical to ForwardTrain's) without
  // touching the running statistics or the Backward cache: for serving with
  // batch statistics and for finite-difference checks.
  // InvalidArgument if x.rows() < 2 or x.cols() != features().
  absl::Status ForwardBatchStatistics(const ConstMatrixRef<T>& x, MatrixT<T>* y) const;

  // Inference mode: y = gamma * (x - running_mean) / sqrt(running_var + eps) + beta,
  // evaluated as y = x * scale + shift with per-feature scale and shift.
  // Any batch size >= 1; a row's output does not depend on the other rows.
  // REQUIRES: x.cols() == features(); y does not alias x.
  void ForwardInference(const ConstMatrixRef<T>& x, MatrixT<T>* y) const;

  // Given dout = dL/dy for the last ForwardTrain, stores dgamma and dbeta
  // and sets *dx = dL/dx.
  // REQUIRES: a successful ForwardTrain before, dout of its output's shape;
  // dx does not alias dout.
  void Backward(const ConstMatrixRef<T>& dout, MatrixT<T>* dx);

 private:
  // The train-mode normalization shared by ForwardTrain and
  // ForwardBatchStatistics: fills *mean, *var, *inv_std (1 x D), *xn and *y.
  void Normalize(const ConstMatrixRef<T>& x, MatrixT<T>* mean, MatrixT<T>* var,
                 MatrixT<T>* inv_std, MatrixT<T>* xn, MatrixT<T>* y) const;
  absl::Status CheckTrainInput(const ConstMatrixRef<T>& x) const;

  double momentum_;
  double eps_;
  MatrixT<T> gamma_;
  MatrixT<T> beta_;
  MatrixT<T> running_mean_;
  MatrixT<T> running_var_;
  MatrixT<T> gamma_grad_;
  MatrixT<T> beta_grad_;
  // Cache of the last ForwardTrain, reused across iterations.
  MatrixT<T> batch_mean_;
  MatrixT<T> batch_var_;
  MatrixT<T> inv_std_;
  MatrixT<T> xn_;
  // Backward scratch (1 x D), kept so that an iteration does not allocate.
  RowVectorT<T> dx_scale_;
  RowVectorT<T> mean_dout_;
  RowVectorT<T> mean_dout_xn_;
};

extern template class BatchNorm<float>;
extern template class BatchNorm<double>;

}  // namespace bnserve

#endif  // BNSERVE_CORE_BATCH_NORM_H_
