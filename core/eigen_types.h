// Eigen type aliases used throughout bnserve.
//
// Matrices are row-major: a batch is a (batch_size x features) matrix whose rows
// are samples, as in the book's NumPy code. Per-feature parameters (biases,
// gamma, beta, running statistics) are 1 x N matrices so that every named
// tensor of a network has the same type and can be stored, optimized and
// serialized uniformly.
//
// The numerics are templates on the scalar type T: float for training and
// serving, double for the finite-difference gradient checks.
//
// Eigen objects are thread-compatible: concurrent const access is safe,
// anything else needs external synchronization.
#ifndef BNSERVE_CORE_EIGEN_TYPES_H_
#define BNSERVE_CORE_EIGEN_TYPES_H_

#include <cstdint>

#include <Eigen/Core>

namespace bnserve {

template <typename T>
using MatrixT = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

template <typename T>
using RowVectorT = Eigen::Matrix<T, 1, Eigen::Dynamic, Eigen::RowMajor>;

template <typename T>
using ConstMatrixRef = Eigen::Ref<const MatrixT<T>>;

template <typename T>
using MatrixMapT = Eigen::Map<MatrixT<T>>;

template <typename T>
using ConstMatrixMapT = Eigen::Map<const MatrixT<T>>;

using Matrix = MatrixT<float>;
using RowVector = RowVectorT<float>;
using MatrixD = MatrixT<double>;

// Integer class labels, one per row of a batch.
using Labels = Eigen::Matrix<int32_t, Eigen::Dynamic, 1>;

}  // namespace bnserve

#endif  // BNSERVE_CORE_EIGEN_TYPES_H_
