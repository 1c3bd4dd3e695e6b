#include "server/onnx_export.h"

#include <cstdint>
#include <exception>
#include <map>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "onnx/checker.h"
#include "onnx/onnx_pb.h"
#include "onnx/shape_inference/implementation.h"

namespace bnserve {
namespace {

const char* ActivationOp(Activation activation) {
  switch (activation) {
    case Activation::kRelu:
      return "Relu";
    case Activation::kSigmoid:
      return "Sigmoid";
    case Activation::kTanh:
      return "Tanh";
  }
  return "Relu";
}

void AddFloatAttribute(onnx::NodeProto* node, const std::string& name, float value) {
  onnx::AttributeProto* attribute = node->add_attribute();
  attribute->set_name(name);
  attribute->set_type(onnx::AttributeProto::FLOAT);
  attribute->set_f(value);
}

void AddIntAttribute(onnx::NodeProto* node, const std::string& name, int64_t value) {
  onnx::AttributeProto* attribute = node->add_attribute();
  attribute->set_name(name);
  attribute->set_type(onnx::AttributeProto::INT);
  attribute->set_i(value);
}

// A node `op` named `name` from `inputs` to the one output `output`.
onnx::NodeProto* AddNode(onnx::GraphProto* graph, const std::string& op, const std::string& name,
                         std::initializer_list<std::string> inputs, const std::string& output) {
  onnx::NodeProto* node = graph->add_node();
  node->set_op_type(op);
  node->set_name(name);
  for (const std::string& input : inputs) node->add_input(input);
  node->add_output(output);
  return node;
}

// An FP32 initializer: [rows, cols] for a weight matrix, [cols] for a 1 x N
// per-feature tensor (`vector`), values row-major in float_data.
void AddInitializer(onnx::GraphProto* graph, const std::string& name, const Matrix& matrix,
                    bool vector) {
  onnx::TensorProto* tensor = graph->add_initializer();
  tensor->set_name(name);
  tensor->set_data_type(onnx::TensorProto::FLOAT);
  if (!vector) tensor->add_dims(matrix.rows());
  tensor->add_dims(matrix.cols());
  tensor->mutable_float_data()->Add(matrix.data(), matrix.data() + matrix.size());
}

void AddScalarInitializer(onnx::GraphProto* graph, const std::string& name, float value) {
  onnx::TensorProto* tensor = graph->add_initializer();
  tensor->set_name(name);
  tensor->set_data_type(onnx::TensorProto::FLOAT);  // no dims: a scalar
  tensor->add_float_data(value);
}

// FP32 [N, features], N symbolic.
void SetBatchType(onnx::ValueInfoProto* value, const std::string& name, int features) {
  value->set_name(name);
  onnx::TypeProto::Tensor* type = value->mutable_type()->mutable_tensor_type();
  type->set_elem_type(onnx::TensorProto::FLOAT);
  onnx::TensorShapeProto* shape = type->mutable_shape();
  shape->add_dim()->set_dim_param("N");
  shape->add_dim()->set_dim_value(features);
}

void AddMetadata(onnx::ModelProto* model, const std::string& key, const std::string& value) {
  onnx::StringStringEntryProto* entry = model->add_metadata_props();
  entry->set_key(key);
  entry->set_value(value);
}

onnx::ModelProto BuildModel(const Network<float>& network, const OnnxModelInfo& info) {
  const NetworkConfig& config = network.config();
  const std::map<std::string, Matrix> tensors = network.ExportTensors();
  onnx::ModelProto model;
  model.set_ir_version(kOnnxIrVersion);
  onnx::OperatorSetIdProto* opset = model.add_opset_import();
  opset->set_domain("");
  opset->set_version(kOnnxOpsetVersion);
  model.set_producer_name("bnserve");
  model.set_producer_version(BNSERVE_VERSION);
  model.set_model_version(info.version);
  model.set_doc_string(absl::StrCat("bnserve model \"", info.model_name, "\" version ",
                                    info.version, info.batchnorm_folded ? ", BatchNorm folded" : "",
                                    ": class probabilities of FP32 rows of ", config.input_size,
                                    " features"));
  AddMetadata(&model, "bnserve.model_name", info.model_name);
  AddMetadata(&model, "bnserve.version", std::to_string(info.version));
  AddMetadata(&model, "bnserve.job_id", info.job_id);
  AddMetadata(&model, "bnserve.batchnorm_folded", info.batchnorm_folded ? "true" : "false");

  onnx::GraphProto* graph = model.mutable_graph();
  graph->set_name(info.model_name.empty() ? "bnserve" : info.model_name);
  SetBatchType(graph->add_input(), "input", config.input_size);
  const bool dropout = config.dropout_ratio > 0.0;
  if (dropout) {
    AddScalarInitializer(graph, "dropout_keep", static_cast<float>(1.0 - config.dropout_ratio));
  }
  std::string h = "input";
  const int hidden = static_cast<int>(config.hidden_sizes.size());
  for (int layer = 1; layer <= hidden + 1; ++layer) {
    const std::string n = std::to_string(layer);
    AddInitializer(graph, "W" + n, tensors.at("W" + n), /*vector=*/false);
    AddInitializer(graph, "b" + n, tensors.at("b" + n), /*vector=*/true);
    const std::string affine = layer <= hidden ? "affine" + n : "scores";
    onnx::NodeProto* gemm = AddNode(graph, "Gemm", "Gemm" + n, {h, "W" + n, "b" + n}, affine);
    AddIntAttribute(gemm, "transB", 0);
    h = affine;
    if (layer > hidden) break;
    if (config.use_batchnorm) {
      for (const char* name : {"gamma", "beta", "running_mean", "running_var"}) {
        AddInitializer(graph, name + n, tensors.at(name + n), /*vector=*/true);
      }
      onnx::NodeProto* norm =
          AddNode(graph, "BatchNormalization", "BatchNormalization" + n,
                  {h, "gamma" + n, "beta" + n, "running_mean" + n, "running_var" + n},
                  "batchnorm" + n);
      AddFloatAttribute(norm, "epsilon", static_cast<float>(config.bn_eps));
      AddFloatAttribute(norm, "momentum", static_cast<float>(config.bn_momentum));
      AddIntAttribute(norm, "training_mode", 0);
      h = "batchnorm" + n;
    }
    const std::string op = ActivationOp(config.activation);
    AddNode(graph, op, op + n, {h}, "activation" + n);
    h = "activation" + n;
    if (dropout) {
      AddNode(graph, "Mul", "Dropout" + n, {h, "dropout_keep"}, "dropout" + n);
      h = "dropout" + n;
    }
  }
  onnx::NodeProto* softmax = AddNode(graph, "Softmax", "Softmax", {h}, "probabilities");
  AddIntAttribute(softmax, "axis", -1);
  SetBatchType(graph->add_output(), "probabilities", config.output_size);
  return model;
}

// check_model, then strict shape inference on a copy. Throws what ONNX throws.
void CheckOrThrow(const onnx::ModelProto& model) {
  onnx::checker::check_model(model);
  onnx::ModelProto inferred = model;
  onnx::ShapeInferenceOptions options(/*check_type_val=*/true, /*strict_mode_val=*/1);
  onnx::shape_inference::InferShapes(inferred, onnx::OpSchemaRegistry::Instance(), options);
}

}  // namespace

absl::StatusOr<std::string> ExportOnnx(const Network<float>& network, const OnnxModelInfo& info) {
  const onnx::ModelProto model = BuildModel(network, info);
  try {
    CheckOrThrow(model);
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("the ONNX checker rejects the export of \"",
                                            info.model_name, "\" version ", info.version, ": ",
                                            e.what()));
  }
  std::string bytes;
  if (!model.SerializeToString(&bytes)) {
    return absl::InternalError("cannot serialize the ONNX model");
  }
  return bytes;
}

absl::Status CheckOnnxModel(const std::string& serialized) {
  onnx::ModelProto model;
  if (!model.ParseFromString(serialized)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the ", serialized.size(), " bytes do not parse as an onnx.ModelProto"));
  }
  try {
    CheckOrThrow(model);
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("the ONNX checker rejects the model: ", e.what()));
  }
  return absl::OkStatus();
}

}  // namespace bnserve
