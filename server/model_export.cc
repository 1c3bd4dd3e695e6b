#include "server/model_export.h"

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/batch_norm_folding.h"
#include "core/status_macros.h"
#include "server/onnx_export.h"
#include "server/proto_convert.h"

namespace bnserve {

absl::StatusOr<v1::ModelVersion> ExportModelVersion(ModelCatalog* catalog,
                                                    const v1::ExportModelRequest& request) {
  v1::ExportModelRequest::Format format = request.format();
  if (format == v1::ExportModelRequest::FORMAT_UNSPECIFIED) format = v1::ExportModelRequest::BNSERVE;
  if (format != v1::ExportModelRequest::BNSERVE && format != v1::ExportModelRequest::ONNX) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown export format ", static_cast<int>(request.format())));
  }
  ASSIGN_OR_RETURN(v1::ModelVersion version, catalog->Get(request.model(), true));
  if (format == v1::ExportModelRequest::BNSERVE && !request.fold_batchnorm()) return version;

  absl::StatusOr<Network<float>> network = NetworkFromVersion(version);
  if (!network.ok()) {
    return absl::DataLossError(absl::StrCat("stored version ", version.version(), " of \"",
                                            version.model_name(), "\" does not build: ",
                                            network.status().message()));
  }
  const bool fold = request.fold_batchnorm() && network->config().use_batchnorm;
  if (fold) {
    absl::StatusOr<Network<float>> folded = FoldBatchNorm(*network);
    if (!folded.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("version ", version.version(), " of \"",
                                                     version.model_name(), "\" does not fold: ",
                                                     folded.status().message()));
    }
    network = std::move(folded);
  }
  if (format == v1::ExportModelRequest::BNSERVE) {
    *version.mutable_network() = NetworkConfigToProto(network->config());
    version.clear_tensors();
    TensorsToProto(network->ExportTensors(), version.mutable_tensors());
    return version;
  }
  OnnxModelInfo info;
  info.model_name = version.model_name();
  info.version = version.version();
  info.job_id = version.job_id();
  info.batchnorm_folded = fold;
  ASSIGN_OR_RETURN(std::string onnx_model, ExportOnnx(*network, info));
  version.clear_tensors();
  version.set_onnx_model(std::move(onnx_model));
  return version;
}

}  // namespace bnserve
