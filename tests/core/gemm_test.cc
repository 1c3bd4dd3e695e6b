// Gemm: every transpose combination, accumulate or not, strided operands and
// awkward shapes against Eigen's own product; buffers reused while the shape
// stays, for the host's cache sizes and for forced tiny ones (many blocks).
#include "core/gemm.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <random>

#include "core/eigen_types.h"
#include "gtest/gtest.h"
#include "tests/testing/malloc_counter.h"

namespace bnserve {
namespace {

using ::bnserve::testing::MallocCalls;

MatrixD Random(Eigen::Index rows, Eigen::Index cols, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> uniform(-1.0, 1.0);
  MatrixD m(rows, cols);
  for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = uniform(rng);
  return m;
}

// op(a) * op(b) by Eigen's expression, the reference.
MatrixD Reference(const MatrixD& a, GemmOp op_a, const MatrixD& b, GemmOp op_b) {
  const MatrixD lhs = op_a == kTranspose ? MatrixD(a.transpose()) : a;
  const MatrixD rhs = op_b == kTranspose ? MatrixD(b.transpose()) : b;
  return lhs * rhs;
}

// The largest |x - y| relative to the largest |y| (1 when y is all zero).
double RelativeError(const MatrixD& x, const MatrixD& y) {
  const double scale = std::max(1.0, y.cwiseAbs().maxCoeff());
  return (x - y).cwiseAbs().maxCoeff() / scale;
}

struct Shape {
  Eigen::Index rows, cols, depth;
};

void CheckAllCombinations(const Shape& s) {
  for (GemmOp op_a : {kNoTranspose, kTranspose}) {
    for (GemmOp op_b : {kNoTranspose, kTranspose}) {
      const MatrixD a = op_a == kNoTranspose ? Random(s.rows, s.depth, 1) : Random(s.depth, s.rows, 1);
      const MatrixD b = op_b == kNoTranspose ? Random(s.depth, s.cols, 2) : Random(s.cols, s.depth, 2);
      const MatrixD expected = Reference(a, op_a, b, op_b);
      GemmWorkspace<double> workspace;
      MatrixD c(3, 3);  // wrong shape: resized
      Gemm<double>(a, op_a, b, op_b, /*accumulate=*/false, &c, &workspace);
      ASSERT_EQ(c.rows(), s.rows);
      ASSERT_EQ(c.cols(), s.cols);
      EXPECT_LT(RelativeError(c, expected), 1e-13)
          << s.rows << "x" << s.cols << "x" << s.depth << " op_a=" << op_a << " op_b=" << op_b;
      const MatrixD start = Random(s.rows, s.cols, 3);
      MatrixD d = start;
      Gemm<double>(a, op_a, b, op_b, /*accumulate=*/true, &d, &workspace);
      EXPECT_LT(RelativeError(d, start + expected), 1e-13)
          << "accumulate " << s.rows << "x" << s.cols << "x" << s.depth;
    }
  }
}

TEST(GemmTest, MatchesEigenForEveryTransposeAndShape) {
  for (const Shape& shape : {Shape{1, 1, 1}, Shape{2, 3, 1}, Shape{1, 17, 9}, Shape{17, 1, 9},
                             Shape{37, 53, 29}, Shape{100, 100, 784}, Shape{784, 100, 100},
                             Shape{100, 784, 100}, Shape{5, 300, 2}}) {
    CheckAllCombinations(shape);
  }
}

TEST(GemmTest, ReadsStridedOperands) {
  // Operands that are column blocks of wider matrices: outer stride != cols.
  const MatrixD wide_a = Random(40, 70, 4);
  const MatrixD wide_b = Random(50, 90, 5);
  const auto a = wide_a.middleCols(3, 30);  // 40 x 30, stride 70
  const auto b = wide_b.middleCols(7, 40);  // 50 x 40, stride 90
  GemmWorkspace<double> workspace;
  MatrixD c;
  Gemm<double>(a, kNoTranspose, b.middleRows(0, 30), kNoTranspose, false, &c, &workspace);
  EXPECT_LT(RelativeError(c, MatrixD(a) * MatrixD(b.middleRows(0, 30))), 1e-13);
  // a^T (30 x 40) * the first 40 rows of b (40 x 40).
  Gemm<double>(a, kTranspose, b.middleRows(0, 40), kNoTranspose, false, &c, &workspace);
  EXPECT_LT(RelativeError(c, MatrixD(a).transpose() * MatrixD(b.middleRows(0, 40))), 1e-13);
}

TEST(GemmTest, FloatAgreesWithDoubleReference) {
  const MatrixD a = Random(100, 784, 6);
  const MatrixD b = Random(784, 100, 7);
  const Matrix af = a.cast<float>();
  const Matrix bf = b.cast<float>();
  GemmWorkspace<float> workspace;
  Matrix c;
  Gemm<float>(af, kNoTranspose, bf, kNoTranspose, false, &c, &workspace);
  const MatrixD expected = af.cast<double>() * bf.cast<double>();
  EXPECT_LT(RelativeError(c.cast<double>(), expected), 1e-5);
}

TEST(GemmTest, ZeroDepthGivesZeroOrLeavesTheAccumulator) {
  const MatrixD a(4, 0);
  const MatrixD b(0, 5);
  GemmWorkspace<double> workspace;
  MatrixD c = MatrixD::Constant(4, 5, 7.0);
  Gemm<double>(a, kNoTranspose, b, kNoTranspose, true, &c, &workspace);
  EXPECT_EQ(c, MatrixD::Constant(4, 5, 7.0));
  Gemm<double>(a, kNoTranspose, b, kNoTranspose, false, &c, &workspace);
  EXPECT_EQ(c, MatrixD::Zero(4, 5));
}

TEST(GemmTest, ReusesItsBuffersWhileTheShapeStays) {
  const Matrix a = Random(100, 784, 8).cast<float>();
  const Matrix b = Random(100, 100, 9).cast<float>();
  GemmWorkspace<float> workspace;
  EXPECT_EQ(workspace.bytes(), 0u);
  Matrix c;
  Gemm<float>(a, kTranspose, b, kNoTranspose, false, &c, &workspace);  // 784 x 100
  EXPECT_GT(workspace.bytes(), 0u);
  const long before = MallocCalls();
  for (int i = 0; i < 3; ++i) Gemm<float>(a, kTranspose, b, kNoTranspose, false, &c, &workspace);
  EXPECT_EQ(MallocCalls() - before, 0);
  // Another shape: new buffers, still the right product.
  const Matrix small = Random(10, 100, 10).cast<float>();
  Gemm<float>(small, kNoTranspose, b, kNoTranspose, false, &c, &workspace);
  EXPECT_LT(RelativeError(c.cast<double>(), small.cast<double>() * b.cast<double>()), 1e-5);
}

TEST(GemmTest, CopiesStartEmptyAndAssignmentKeepsItsOwnBuffers) {
  const Matrix a = Random(64, 64, 11).cast<float>();
  GemmWorkspace<float> workspace;
  Matrix c;
  Gemm<float>(a, kNoTranspose, a, kNoTranspose, false, &c, &workspace);
  const size_t bytes = workspace.bytes();
  ASSERT_GT(bytes, 0u);
  GemmWorkspace<float> copy(workspace);
  EXPECT_EQ(copy.bytes(), 0u);
  GemmWorkspace<float> empty;
  workspace = empty;
  EXPECT_EQ(workspace.bytes(), bytes);
}

// The bound memory estimates use holds for every shape and cache profile.
TEST(GemmTest, BuffersStayWithinTheirBound) {
  const std::ptrdiff_t l1 = Eigen::l1CacheSize(), l2 = Eigen::l2CacheSize(),
                       l3 = Eigen::l3CacheSize();
  struct Caches {
    std::ptrdiff_t l1, l2, l3;
  };
  for (const Caches& caches : {Caches{l1, l2, l3}, Caches{16 << 10, 128 << 10, 2 << 20},
                               Caches{48 << 10, 2 << 20, 105 << 20},
                               Caches{64 << 10, 8 << 20, 256 << 20}}) {
    Eigen::setCpuCacheSizes(caches.l1, caches.l2, caches.l3);
    for (const Shape& s : {Shape{100, 100, 784}, Shape{784, 100, 100}, Shape{100, 784, 100},
                           Shape{4096, 16384, 300}, Shape{60000, 10, 100}}) {
      const Matrix a = Matrix::Zero(s.rows, s.depth);
      const Matrix b = Matrix::Zero(s.depth, s.cols);
      GemmWorkspace<float> workspace;
      Matrix c;
      Gemm<float>(a, kNoTranspose, b, kNoTranspose, false, &c, &workspace);
      EXPECT_LE(workspace.bytes(), static_cast<size_t>(GemmWorkspace<float>::BoundScalars(
                                       s.rows, s.cols, s.depth)) * sizeof(float))
          << s.rows << "x" << s.cols << "x" << s.depth << " L2 " << caches.l2;
    }
  }
  Eigen::setCpuCacheSizes(l1, l2, l3);
}

TEST(GemmTest, TinyForcedCachesSplitIntoManyBlocksAndStayExact) {
  const std::ptrdiff_t l1 = Eigen::l1CacheSize(), l2 = Eigen::l2CacheSize(),
                       l3 = Eigen::l3CacheSize();
  Eigen::setCpuCacheSizes(4 * 1024, 16 * 1024, 64 * 1024);
  CheckAllCombinations(Shape{300, 200, 500});
  Eigen::setCpuCacheSizes(l1, l2, l3);
}

}  // namespace
}  // namespace bnserve
