// ExportModelVersion: the semantics of ModelRegistry.ExportModel without a
// transport — a stored version as a bnserve ModelVersion (for ImportModel)
// or as an ONNX model, unfolded or with its BatchNorm layers folded.
//
//   v1::ExportModelRequest request;                 // model, format, fold_batchnorm
//   ASSIGN_OR_RETURN(v1::ModelVersion exported, ExportModelVersion(&catalog, request));
//
// Format BNSERVE (or unset): the version with every tensor; with
// fold_batchnorm, its network config and tensors are the folded network's
// (core/batch_norm_folding.h; no BatchNorm, so it imports as a BN-free
// model). Format ONNX: the version's metadata, no tensors, and onnx_model
// the serialized ModelProto of the network or of its fold
// (server/onnx_export.h, checked before it is returned).
//
// Thread-safety: thread-safe (the catalog is).
#ifndef BNSERVE_SERVER_MODEL_EXPORT_H_
#define BNSERVE_SERVER_MODEL_EXPORT_H_

#include "absl/status/statusor.h"
#include "bnserve/v1/model_registry.pb.h"
#include "server/model_catalog.h"

namespace bnserve {

// The catalog's errors for request.model() (InvalidArgument, NotFound);
// InvalidArgument for an unknown format or a network that does not fold;
// DataLoss for stored tensors that do not build a network; Internal if the
// ONNX checker rejects an export.
absl::StatusOr<v1::ModelVersion> ExportModelVersion(ModelCatalog* catalog,
                                                    const v1::ExportModelRequest& request);

}  // namespace bnserve

#endif  // BNSERVE_SERVER_MODEL_EXPORT_H_
