// ExportOnnx: a bnserve network as an ONNX model (IR version 8, opset 17,
// ONNX 1.12), serialized, for ONNX Runtime and every other ONNX consumer.
//
// The graph maps the network layer by layer, in inference mode:
//   per hidden layer i:  Gemm(h, W{i}, b{i})            W is [in, out]: transB = 0
//                        -> BatchNormalization(gamma{i}, beta{i}, running_mean{i},
//                           running_var{i}; epsilon = the network's bn_eps, written
//                           explicitly since ONNX's default 1e-5 is not bnserve's 1e-6;
//                           training_mode 0)                       (networks with BN)
//                        -> Relu / Sigmoid / Tanh
//                        -> Mul(1 - dropout_ratio)           (networks with dropout:
//                           the book's dropout scales at inference; ONNX's Dropout
//                           is the identity there, so it is not used)
//   then                 Gemm(h, W{L}, b{L}) -> Softmax(axis = -1)
// Input "input": FP32 [N, input_size] with the symbolic batch dimension "N";
// output "probabilities": FP32 [N, output_size]. Initializers carry the
// network's tensor names (W1, b1, gamma1, ...). A network without BatchNorm
// (such as FoldBatchNorm's) has no BatchNormalization nodes. The model's
// metadata_props: bnserve.model_name, bnserve.version, bnserve.job_id,
// bnserve.batchnorm_folded; model_version is the version number.
//
// Every export is checked before it is returned: onnx::checker::check_model
// and ONNX's shape inference in strict mode (which also checks that the
// inferred output shape is the declared one). ONNX's C++ library reports
// errors by exception; none leaves this file.
//
//   ASSIGN_OR_RETURN(std::string bytes, ExportOnnx(network, {"digits", 3, "job-000007"}));
//
// Uses Debian's libonnx (its generated onnx.ModelProto classes, package
// "onnx", and its checker); nothing of ONNX appears in this header.
// Thread-safety: a pure function of its arguments; thread-safe.
#ifndef BNSERVE_SERVER_ONNX_EXPORT_H_
#define BNSERVE_SERVER_ONNX_EXPORT_H_

#include <string>

#include "absl/status/statusor.h"
#include "core/network.h"

namespace bnserve {

// Where an exported model came from, for its metadata.
struct OnnxModelInfo {
  std::string model_name;
  int version = 0;
  std::string job_id;  // empty for an imported version
  // Whether `network` is the BatchNorm-folded network of the version.
  bool batchnorm_folded = false;
};

inline constexpr int kOnnxIrVersion = 8;
inline constexpr int kOnnxOpsetVersion = 17;

// The serialized onnx.ModelProto of `network`. Internal if the checker or
// shape inference rejects the model (a bug of this exporter, never the
// caller's input: a Network's shapes are consistent by construction).
absl::StatusOr<std::string> ExportOnnx(const Network<float>& network, const OnnxModelInfo& info);

// check_model and strict shape inference on a serialized model, as
// ExportOnnx runs them. InvalidArgument naming the checker's complaint, or
// for bytes that do not parse as an onnx.ModelProto.
absl::Status CheckOnnxModel(const std::string& serialized);

}  // namespace bnserve

#endif  // BNSERVE_SERVER_ONNX_EXPORT_H_
