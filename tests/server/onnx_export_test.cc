// ExportOnnx: the graph node by node (ops, inputs, attributes, initializers
// equal to the network's tensors), the input / output signature, the
// metadata, the folded and dropout variants, ONNX's own checker on every
// export, and that libonnx's generated classes share the process's
// descriptor pool with bnserve's protos without a clash.
#include "server/onnx_export.h"

#include <map>
#include <string>
#include <vector>

#include "bnserve/v1/model_registry.pb.h"
#include "core/batch_norm_folding.h"
#include "core/network.h"
#include "gmock/gmock.h"
#include "google/protobuf/descriptor.h"
#include "gtest/gtest.h"
#include "onnx/checker.h"
#include "onnx/onnx_pb.h"
#include "tests/testing/status_matchers.h"

namespace bnserve {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

NetworkConfig SmallConfig() {
  NetworkConfig config;
  config.input_size = 6;
  config.hidden_sizes = {5, 4};
  config.output_size = 3;
  config.weight_init.kind = WeightInit::Kind::kHe;
  config.bn_eps = 1e-6;
  return config;
}

// A network whose BatchNorm tensors are all distinct from their defaults.
Network<float> SmallNetwork(const NetworkConfig& config) {
  absl::StatusOr<Network<float>> network = Network<float>::Create(config, 3);
  EXPECT_OK(network.status());
  std::map<std::string, Matrix> tensors = network->ExportTensors();
  float value = 0.5f;
  for (auto& [name, tensor] : tensors) {
    if (name[0] == 'W') continue;
    for (Eigen::Index j = 0; j < tensor.size(); ++j) tensor.data()[j] = (value += 0.01f);
  }
  EXPECT_OK(network->ImportTensors(tensors));
  return *std::move(network);
}

onnx::ModelProto Parse(const std::string& bytes) {
  onnx::ModelProto model;
  EXPECT_TRUE(model.ParseFromString(bytes));
  return model;
}

std::vector<std::string> OpTypes(const onnx::GraphProto& graph) {
  std::vector<std::string> ops;
  for (const onnx::NodeProto& node : graph.node()) ops.push_back(node.op_type());
  return ops;
}

const onnx::AttributeProto* Attribute(const onnx::NodeProto& node, const std::string& name) {
  for (const onnx::AttributeProto& attribute : node.attribute()) {
    if (attribute.name() == name) return &attribute;
  }
  return nullptr;
}

std::map<std::string, const onnx::TensorProto*> Initializers(const onnx::GraphProto& graph) {
  std::map<std::string, const onnx::TensorProto*> initializers;
  for (const onnx::TensorProto& tensor : graph.initializer()) initializers[tensor.name()] = &tensor;
  return initializers;
}

std::vector<float> FloatData(const onnx::TensorProto& tensor) {
  return std::vector<float>(tensor.float_data().begin(), tensor.float_data().end());
}

std::vector<float> Values(const Matrix& matrix) {
  return std::vector<float>(matrix.data(), matrix.data() + matrix.size());
}

std::string Metadata(const onnx::ModelProto& model, const std::string& key) {
  for (const onnx::StringStringEntryProto& entry : model.metadata_props()) {
    if (entry.key() == key) return entry.value();
  }
  return "<absent>";
}

// FP32 [N, features] with N symbolic.
void ExpectBatchSignature(const onnx::ValueInfoProto& value, const std::string& name,
                          int features) {
  EXPECT_EQ(value.name(), name);
  const onnx::TypeProto::Tensor& type = value.type().tensor_type();
  EXPECT_EQ(type.elem_type(), onnx::TensorProto::FLOAT);
  ASSERT_EQ(type.shape().dim_size(), 2);
  EXPECT_EQ(type.shape().dim(0).dim_param(), "N");
  EXPECT_FALSE(type.shape().dim(0).has_dim_value());
  EXPECT_EQ(type.shape().dim(1).dim_value(), features);
}

TEST(OnnxExportTest, UnfoldedGraphIsGemmBatchNormActivationPerLayerThenGemmSoftmax) {
  const NetworkConfig config = SmallConfig();
  const Network<float> network = SmallNetwork(config);
  ASSERT_OK_AND_ASSIGN(std::string bytes, ExportOnnx(network, {"digits", 3, "job-000007"}));
  const onnx::ModelProto model = Parse(bytes);
  EXPECT_NO_THROW(onnx::checker::check_model(model));
  EXPECT_OK(CheckOnnxModel(bytes));

  EXPECT_EQ(model.ir_version(), 8);
  ASSERT_EQ(model.opset_import_size(), 1);
  EXPECT_EQ(model.opset_import(0).domain(), "");
  EXPECT_EQ(model.opset_import(0).version(), 17);
  EXPECT_EQ(model.producer_name(), "bnserve");
  EXPECT_EQ(model.model_version(), 3);
  EXPECT_EQ(Metadata(model, "bnserve.model_name"), "digits");
  EXPECT_EQ(Metadata(model, "bnserve.version"), "3");
  EXPECT_EQ(Metadata(model, "bnserve.job_id"), "job-000007");
  EXPECT_EQ(Metadata(model, "bnserve.batchnorm_folded"), "false");

  const onnx::GraphProto& graph = model.graph();
  ASSERT_EQ(graph.input_size(), 1);
  ExpectBatchSignature(graph.input(0), "input", 6);
  ASSERT_EQ(graph.output_size(), 1);
  ExpectBatchSignature(graph.output(0), "probabilities", 3);
  EXPECT_THAT(OpTypes(graph),
              ElementsAre("Gemm", "BatchNormalization", "Relu", "Gemm", "BatchNormalization",
                          "Relu", "Gemm", "Softmax"));

  // Each node reads the previous one's output; the weights by their names.
  const onnx::NodeProto& gemm1 = graph.node(0);
  EXPECT_THAT(gemm1.input(), ElementsAre("input", "W1", "b1"));
  ASSERT_NE(Attribute(gemm1, "transB"), nullptr);
  EXPECT_EQ(Attribute(gemm1, "transB")->i(), 0);
  const onnx::NodeProto& norm1 = graph.node(1);
  EXPECT_THAT(norm1.input(),
              ElementsAre(gemm1.output(0), "gamma1", "beta1", "running_mean1", "running_var1"));
  ASSERT_NE(Attribute(norm1, "epsilon"), nullptr);
  EXPECT_EQ(Attribute(norm1, "epsilon")->f(), 1e-6f);  // bnserve's, not ONNX's 1e-5
  ASSERT_NE(Attribute(norm1, "training_mode"), nullptr);
  EXPECT_EQ(Attribute(norm1, "training_mode")->i(), 0);
  EXPECT_EQ(norm1.output_size(), 1);
  EXPECT_THAT(graph.node(2).input(), ElementsAre(norm1.output(0)));
  EXPECT_THAT(graph.node(3).input(), ElementsAre(graph.node(2).output(0), "W2", "b2"));
  EXPECT_THAT(graph.node(6).input(), ElementsAre(graph.node(5).output(0), "W3", "b3"));
  const onnx::NodeProto& softmax = graph.node(7);
  EXPECT_THAT(softmax.input(), ElementsAre(graph.node(6).output(0)));
  EXPECT_THAT(softmax.output(), ElementsAre("probabilities"));
  ASSERT_NE(Attribute(softmax, "axis"), nullptr);
  EXPECT_EQ(Attribute(softmax, "axis")->i(), -1);

  // Every tensor of the network, with its values: W [in, out], the rest [N].
  const std::map<std::string, const onnx::TensorProto*> initializers = Initializers(graph);
  const std::map<std::string, Matrix> tensors = network.ExportTensors();
  ASSERT_EQ(initializers.size(), tensors.size());
  for (const auto& [name, matrix] : tensors) {
    ASSERT_EQ(initializers.count(name), 1u) << name;
    const onnx::TensorProto& tensor = *initializers.at(name);
    EXPECT_EQ(tensor.data_type(), onnx::TensorProto::FLOAT) << name;
    if (name[0] == 'W') {
      EXPECT_THAT(tensor.dims(), ElementsAre(matrix.rows(), matrix.cols())) << name;
    } else {
      EXPECT_THAT(tensor.dims(), ElementsAre(matrix.cols())) << name;
    }
    EXPECT_EQ(FloatData(tensor), Values(matrix)) << name;
  }
}

TEST(OnnxExportTest, EpsilonIsTheNetworksOwn) {
  NetworkConfig config = SmallConfig();
  config.bn_eps = 0.125;
  ASSERT_OK_AND_ASSIGN(std::string bytes, ExportOnnx(SmallNetwork(config), {"m", 1, ""}));
  const onnx::ModelProto model = Parse(bytes);
  EXPECT_EQ(Attribute(model.graph().node(1), "epsilon")->f(), 0.125f);
  EXPECT_EQ(Metadata(model, "bnserve.job_id"), "");
}

TEST(OnnxExportTest, FoldedGraphIsGemmActivationOnlyWithTheFoldsWeights) {
  NetworkConfig config = SmallConfig();
  config.activation = Activation::kSigmoid;
  ASSERT_OK_AND_ASSIGN(Network<float> folded, FoldBatchNorm(SmallNetwork(config)));
  ASSERT_OK_AND_ASSIGN(std::string bytes, ExportOnnx(folded, {"m", 2, "job-1", true}));
  const onnx::ModelProto model = Parse(bytes);
  EXPECT_NO_THROW(onnx::checker::check_model(model));
  EXPECT_EQ(Metadata(model, "bnserve.batchnorm_folded"), "true");
  EXPECT_THAT(OpTypes(model.graph()),
              ElementsAre("Gemm", "Sigmoid", "Gemm", "Sigmoid", "Gemm", "Softmax"));
  const std::map<std::string, const onnx::TensorProto*> initializers =
      Initializers(model.graph());
  EXPECT_EQ(initializers.size(), 6u);
  const Matrix w1 = folded.ExportTensors().at("W1");  // a copy: the map is a temporary
  EXPECT_EQ(FloatData(*initializers.at("W1")), Values(w1));
}

// The book's dropout scales by 1 - ratio at inference (ONNX's Dropout would
// be the identity): a Mul by that scalar after each activation.
TEST(OnnxExportTest, DropoutIsAMulByTheKeepRatio) {
  NetworkConfig config = SmallConfig();
  config.activation = Activation::kTanh;
  config.dropout_ratio = 0.25;
  ASSERT_OK_AND_ASSIGN(std::string bytes, ExportOnnx(SmallNetwork(config), {"m", 1, ""}));
  const onnx::ModelProto model = Parse(bytes);
  EXPECT_NO_THROW(onnx::checker::check_model(model));
  EXPECT_THAT(OpTypes(model.graph()),
              ElementsAre("Gemm", "BatchNormalization", "Tanh", "Mul", "Gemm",
                          "BatchNormalization", "Tanh", "Mul", "Gemm", "Softmax"));
  const onnx::NodeProto& mul = model.graph().node(3);
  EXPECT_THAT(mul.input(), ElementsAre(model.graph().node(2).output(0), "dropout_keep"));
  const onnx::TensorProto& keep = *Initializers(model.graph()).at("dropout_keep");
  EXPECT_EQ(keep.dims_size(), 0);  // a scalar
  EXPECT_THAT(keep.float_data(), ElementsAre(0.75f));
}

TEST(OnnxExportTest, CheckOnnxModelRejectsWhatTheCheckerRejects) {
  ASSERT_OK_AND_ASSIGN(std::string bytes, ExportOnnx(SmallNetwork(SmallConfig()), {"m", 1, ""}));
  EXPECT_THAT(CheckOnnxModel("not a model"),
              ::bnserve::testing::StatusIs(absl::StatusCode::kInvalidArgument));
  onnx::ModelProto model = Parse(bytes);
  // W1 transposed in shape only: the Gemm no longer fits (strict shape inference).
  for (onnx::TensorProto& tensor : *model.mutable_graph()->mutable_initializer()) {
    if (tensor.name() == "W1") {
      const int64_t rows = tensor.dims(0);
      tensor.set_dims(0, tensor.dims(1));
      tensor.set_dims(1, rows);
    }
  }
  absl::Status status = CheckOnnxModel(model.SerializeAsString());
  EXPECT_THAT(status, ::bnserve::testing::StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(status.message(), HasSubstr("checker"));
  model = Parse(bytes);
  model.mutable_graph()->mutable_node(2)->set_op_type("NoSuchOp");
  EXPECT_THAT(CheckOnnxModel(model.SerializeAsString()),
              ::bnserve::testing::StatusIs(absl::StatusCode::kInvalidArgument));
}

// libonnx registers its generated onnx-ml.proto in the same generated pool
// as bnserve's protos: both resolve, each message once, and under its own
// package (two copies of one file would have aborted the process at start).
TEST(OnnxExportTest, OnnxAndBnserveDescriptorsShareThePoolWithoutAClash) {
  const google::protobuf::DescriptorPool* pool = google::protobuf::DescriptorPool::generated_pool();
  const google::protobuf::Descriptor* onnx_model = pool->FindMessageTypeByName("onnx.ModelProto");
  ASSERT_NE(onnx_model, nullptr);
  EXPECT_EQ(onnx_model, onnx::ModelProto::descriptor());
  EXPECT_EQ(onnx_model->file()->name(), "onnx/onnx-ml.proto");
  const google::protobuf::Descriptor* version =
      pool->FindMessageTypeByName("bnserve.v1.ModelVersion");
  ASSERT_NE(version, nullptr);
  EXPECT_EQ(version, v1::ModelVersion::descriptor());
  EXPECT_EQ(pool->FindFileByName("bnserve/v1/model_registry.proto"), version->file());
  for (int i = 0; i < onnx_model->file()->message_type_count(); ++i) {
    EXPECT_EQ(onnx_model->file()->message_type(i)->full_name().rfind("onnx.", 0), 0u);
  }
}

}  // namespace
}  // namespace bnserve
