// ExportModelVersion: the BNSERVE format (as GetModel with tensors, and its
// folded variant, which imports back as a BN-free model answering as the
// folded network), the ONNX format (metadata without tensors, a checked
// ONNX model of the network or of its fold) and the request's errors.
#include "server/model_export.h"

#include <memory>
#include <string>

#include "core/batch_norm_folding.h"
#include "core/network.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/model_catalog.h"
#include "server/onnx_export.h"
#include "server/proto_convert.h"
#include "server/sqlite_model_store.h"
#include "tests/server/server_test_util.h"
#include "tests/testing/random_data.h"
#include "tests/testing/status_matchers.h"

namespace bnserve {
namespace {

using ::bnserve::testing::StatusIs;
using ::bnserve::testing::TempPath;
using ::testing::HasSubstr;

class ModelExportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK_AND_ASSIGN(store_, SqliteModelStore::Open(TempPath("export.db")));
    catalog_ = std::make_unique<ModelCatalog>(store_.get());
    NetworkConfig config;
    config.input_size = 8;
    config.hidden_sizes = {6, 5};
    config.output_size = 4;
    ASSERT_OK_AND_ASSIGN(Network<float> network, Network<float>::Create(config, 12));
    std::map<std::string, Matrix> tensors = network.ExportTensors();
    tensors["running_mean1"].setConstant(0.25f);
    tensors["running_var1"].setConstant(0.5f);
    tensors["gamma2"].setConstant(-1.5f);
    ASSERT_OK(network.ImportTensors(tensors));
    v1::ModelVersion metadata;
    metadata.set_model_name("m");
    metadata.set_job_id("job-000042");
    ASSERT_OK(catalog_->RegisterNetwork(network, metadata, nullptr).status());
    network_ = std::make_unique<Network<float>>(std::move(network));
  }

  v1::ExportModelRequest Request(v1::ExportModelRequest::Format format, bool fold) {
    v1::ExportModelRequest request;
    request.mutable_model()->set_name("m");
    request.set_format(format);
    request.set_fold_batchnorm(fold);
    return request;
  }

  std::unique_ptr<SqliteModelStore> store_;
  std::unique_ptr<ModelCatalog> catalog_;
  std::unique_ptr<Network<float>> network_;
};

TEST_F(ModelExportTest, BnserveFormatIsTheVersionWithEveryTensor) {
  v1::ModelRef ref;
  ref.set_name("m");
  ASSERT_OK_AND_ASSIGN(v1::ModelVersion expected, catalog_->Get(ref, true));
  for (auto format : {v1::ExportModelRequest::FORMAT_UNSPECIFIED, v1::ExportModelRequest::BNSERVE}) {
    ASSERT_OK_AND_ASSIGN(v1::ModelVersion exported,
                         ExportModelVersion(catalog_.get(), Request(format, false)));
    EXPECT_EQ(exported.SerializeAsString(), expected.SerializeAsString());
    EXPECT_TRUE(exported.served_folded());
    EXPECT_TRUE(exported.onnx_model().empty());
  }
}

TEST_F(ModelExportTest, FoldedBnserveFormatImportsAsTheFoldedNetwork) {
  ASSERT_OK_AND_ASSIGN(v1::ModelVersion exported,
                       ExportModelVersion(catalog_.get(),
                                          Request(v1::ExportModelRequest::BNSERVE, true)));
  EXPECT_FALSE(exported.network().use_batchnorm());
  EXPECT_EQ(exported.tensors_size(), 6);  // W1..W3, b1..b3
  ASSERT_OK_AND_ASSIGN(Network<float> imported, NetworkFromVersion(exported));
  ASSERT_OK_AND_ASSIGN(Network<float> folded, FoldBatchNorm(*network_));
  EXPECT_EQ(imported.ExportTensors(), folded.ExportTensors());
  const Matrix x = ::bnserve::testing::RandomInput(9, 8, 1);
  ASSERT_OK_AND_ASSIGN(Matrix expected, network_->PredictProbabilities(x, BnMode::kInference));
  ASSERT_OK_AND_ASSIGN(Matrix actual, imported.PredictProbabilities(x, BnMode::kInference));
  EXPECT_LE((actual - expected).cwiseAbs().maxCoeff(), 1e-5f);
  // And the registry takes it back.
  exported.set_model_name("m-folded");
  EXPECT_OK(catalog_->Register(exported, nullptr).status());
}

TEST_F(ModelExportTest, OnnxFormatIsMetadataAndACheckedModel) {
  for (bool fold : {false, true}) {
    ASSERT_OK_AND_ASSIGN(v1::ModelVersion exported,
                         ExportModelVersion(catalog_.get(),
                                            Request(v1::ExportModelRequest::ONNX, fold)));
    EXPECT_EQ(exported.model_name(), "m");
    EXPECT_EQ(exported.version(), 1);
    EXPECT_EQ(exported.job_id(), "job-000042");
    EXPECT_EQ(exported.tensors_size(), 0);
    ASSERT_FALSE(exported.onnx_model().empty());
    EXPECT_OK(CheckOnnxModel(exported.onnx_model()));
    // The bytes are exactly ExportOnnx's for the network (or its fold).
    OnnxModelInfo info{"m", 1, "job-000042", fold};
    absl::StatusOr<std::string> expected =
        fold ? ExportOnnx(*FoldBatchNorm(*network_), info) : ExportOnnx(*network_, info);
    ASSERT_OK(expected.status());
    EXPECT_EQ(exported.onnx_model(), *expected) << "fold " << fold;
  }
}

TEST_F(ModelExportTest, ErrorsOfTheRequest) {
  v1::ExportModelRequest request = Request(v1::ExportModelRequest::ONNX, false);
  request.mutable_model()->set_name("absent");
  EXPECT_THAT(ExportModelVersion(catalog_.get(), request), StatusIs(absl::StatusCode::kNotFound));
  request.mutable_model()->set_name("bad name");
  EXPECT_THAT(ExportModelVersion(catalog_.get(), request),
              StatusIs(absl::StatusCode::kInvalidArgument));
  request = Request(static_cast<v1::ExportModelRequest::Format>(7), false);
  absl::StatusOr<v1::ModelVersion> unknown = ExportModelVersion(catalog_.get(), request);
  EXPECT_THAT(unknown, StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(unknown.status().message(), HasSubstr("format 7"));
}

}  // namespace
}  // namespace bnserve
