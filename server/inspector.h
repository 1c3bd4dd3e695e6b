// Inspector: the work of InferenceService.Inspect without gRPC — what each
// hidden layer of a network does to a batch (core/network_inspection.h),
// for a stored version or a freshly initialised untrained network, on
// labelled data, inline rows or N(0, 1) rows.
//
//   Inspector inspector(&catalog, &data, InspectorOptions{});
//   ASSIGN_OR_RETURN(InspectQuery query, inspector.Parse(request));   // cheap, no data
//   RETURN_IF_ERROR(inspector.Run(query, &response));
//
// A request is validated once, into an InspectQuery, before anything is
// loaded or allocated: bins 1..1000 (0: 30); range_min and range_max both set
// or neither, finite, min < max; random_normal_rows in 1..max_rows; inline
// rows at most max_rows, well formed and finite; a DataSpec that passes
// DataResolver::Prepare (labels are ignored); an untrained network whose
// config has input_size > 0 and converts (NetworkConfigFromProto);
// BATCH_STATISTICS with fewer than 2 rows is InvalidArgument whether or not
// the network has BatchNorm. Run then resolves the network (the stored,
// unfolded network, so that BatchNorm outputs exist: its running statistics
// are never changed) and the rows, refuses with ResourceExhausted a forward
// pass whose estimate (core's EstimateForwardBytes, plus the generated
// N(0, 1) rows) exceeds max_pass_bytes or a response over
// max_response_bytes, before allocating them, and fills the response.
//
// Thread-safety: thread-safe (the catalog and the resolver are; networks
// are const).
#ifndef BNSERVE_SERVER_INSPECTOR_H_
#define BNSERVE_SERVER_INSPECTOR_H_

#include <cstdint>
#include <variant>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "bnserve/v1/inference_service.pb.h"
#include "core/bn_mode.h"
#include "core/eigen_types.h"
#include "core/histogram.h"
#include "core/network_config.h"
#include "server/data_resolver.h"
#include "server/model_catalog.h"

namespace bnserve {

struct InspectorOptions {
  // Most inline or N(0, 1) rows (the service's max_batch); more are
  // ResourceExhausted.
  int max_rows = 10000;
  // Largest estimated working memory of the forward pass, in bytes.
  int64_t max_pass_bytes = int64_t{4096} << 20;
  // Largest response, in bytes (the server's message limit).
  int64_t max_response_bytes = int64_t{64} << 20;
};

// A validated InspectRequest. The inline rows view the request's buffer:
// the query is valid while the request lives and is not modified.
struct InspectQuery {
  struct Untrained {
    NetworkConfig config;  // defaults applied, input_size > 0, validated
    uint64_t seed = 0;
  };
  struct InlineRows {
    ConstMatrixMapT<float> values;  // finite, rows in 1..max_rows
  };
  struct RandomNormalRows {
    int64_t rows = 0;  // 1..max_rows
    uint64_t seed = 0;
  };

  std::variant<v1::ModelRef, Untrained> network;
  std::variant<DataSource, InlineRows, RandomNormalRows> input;
  BnMode mode = BnMode::kInference;
  HistogramOptions histogram;
};

class Inspector {
 public:
  // The pointers must outlive the inspector.
  Inspector(ModelCatalog* catalog, DataResolver* data, const InspectorOptions& options)
      : catalog_(catalog), data_(data), options_(options) {}

  Inspector(const Inspector&) = delete;
  Inspector& operator=(const Inspector&) = delete;

  // The request as a typed value, or InvalidArgument naming the first bad
  // field (ResourceExhausted for more rows than max_rows). Loads nothing.
  absl::StatusOr<InspectQuery> Parse(const v1::InspectRequest& request) const;

  // Runs `query` and fills `response` (left unchanged on an error).
  // NotFound for an unknown model, version or alias, or missing data files;
  // InvalidArgument for rows that do not fit the network (feature count),
  // BATCH_STATISTICS with one row, or a layer output that is not finite;
  // ResourceExhausted over the memory or response limits; DataLoss as
  // ModelCatalog::Load.
  absl::Status Run(const InspectQuery& query, v1::InspectResponse* response);

  // Parse, then Run.
  absl::Status Inspect(const v1::InspectRequest& request, v1::InspectResponse* response);

 private:
  ModelCatalog* const catalog_;
  DataResolver* const data_;
  const InspectorOptions options_;
};

}  // namespace bnserve

#endif  // BNSERVE_SERVER_INSPECTOR_H_
