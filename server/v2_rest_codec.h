// The Open Inference Protocol's REST bodies <-> its proto messages
// (proto/inference/open_inference_grpc.proto), so that a REST infer request
// becomes the same inference::ModelInferRequest a gRPC client sends and
// OpenInference (server/open_inference.h) answers both alike. Pure
// functions over strings: no sockets, no model, no inference.
//
//   ASSIGN_OR_RETURN(RestInferRequest parsed,
//                    ParseInferRequest(body, header_length, "digits", ""));
//   RETURN_IF_ERROR(open_inference->ModelInfer(parsed.request, &response));
//   ASSIGN_OR_RETURN(RestBody out, EncodeInferResponse(response, parsed.output_format));
//
// JSON is the REST document's (specification/protocol/inference_rest.md):
// a request {"id", "parameters", "inputs": [{"name", "shape", "datatype",
// "parameters", "data"}], "outputs": [{"name", "parameters"}]} and a
// response {"model_name", "model_version", "id", "parameters", "outputs":
// [{"name", "shape", "datatype", "parameters", "data"}]}. Request keys the
// document does not define are ignored (the path, not a "model_name" key,
// names the model). `data` is flat (row-major) or nested exactly as the
// shape (every level's length its dimension); response data are flat.
// JSON numbers are read as doubles: FP32 inputs are rounded to float
// (InvalidArgument outside float's range), integer types must be JSON
// integers within their range, BOOL JSON booleans, BYTES strings; FP16 and
// BF16 have no JSON form (InvalidArgument). An FP32 output is written as
// the float's exact value, widened to double, in a decimal that reads back
// as exactly that double (nlohmann's Grisu2), so a reader parsing it as a
// double or as a float gets the same float, bit for bit.
// `parameters` values map to InferParameter: bool, integer (int64; uint64
// above int64's range), string, double; null, arrays and objects are
// InvalidArgument.
//
// Triton's binary tensor data extension (docs/protocol/
// extension_binary_data.md in triton-inference-server/server): with an
// Inference-Header-Content-Length header the body is that many bytes of
// JSON followed by the binary data of every input whose parameters carry
// "binary_data_size", in input order, little-endian, row-major. Those inputs
// have no "data"; their bytes go to raw_input_contents. The protocol wants
// all inputs raw or none, so when some input is binary the others' JSON
// values are encoded into raw_input_contents too. An output is binary when
// its request entry says "binary_data": true, or else when the request's
// "binary_data_output" is true (for every output when the request lists
// none); its JSON has "binary_data_size" in its parameters and no "data",
// and its bytes follow the JSON in output order. The three extension
// parameters are consumed here and not passed on. The header length 0 (the
// extension's headerless "raw binary request") is InvalidArgument.
//
// Every malformed request is InvalidArgument with a message saying what and
// where ("inputs[0].shape[1]: ..."); a response this codec cannot encode (a
// value count that disagrees with its shape) is Internal.
//
// Thread-safety: stateless; every function may be called concurrently.
#ifndef BNSERVE_SERVER_V2_REST_CODEC_H_
#define BNSERVE_SERVER_V2_REST_CODEC_H_

#include <cstddef>
#include <optional>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "inference/open_inference_grpc.pb.h"
#include "nlohmann/json.hpp"

namespace bnserve {

// The HTTP header of the binary tensor data extension.
inline constexpr const char* kInferenceHeaderContentLength = "Inference-Header-Content-Length";

// Which outputs of an infer response go back as binary data.
struct RestOutputFormat {
  // The request's "binary_data_output".
  bool binary_by_default = false;
  // Outputs whose request entry set "binary_data".
  absl::flat_hash_map<std::string, bool> binary_by_name;

  bool IsBinary(const std::string& output_name) const;
};

struct RestInferRequest {
  inference::ModelInferRequest request;
  RestOutputFormat output_format;
};

// An encoded response body: `json_size` bytes of JSON, then binary tensor
// data if any.
struct RestBody {
  std::string body;
  size_t json_size = 0;

  bool has_binary_data() const { return json_size < body.size(); }
};

// Parses an infer request body addressed to (model_name, model_version)
// (from the path; copied into the request). `header_length` is the
// Inference-Header-Content-Length header's value if the request had one:
// a decimal in [1, body.size()] (InvalidArgument otherwise), and then the
// binary inputs' sizes must add up to exactly the bytes after the JSON.
absl::StatusOr<RestInferRequest> ParseInferRequest(absl::string_view body,
                                                   std::optional<absl::string_view> header_length,
                                                   const std::string& model_name,
                                                   const std::string& model_version);

// The response's REST body. An output's values come from its typed
// contents, or from raw_output_contents when the response has them (one per
// output, in order). Internal for a response whose contents disagree with
// its shapes or datatypes.
absl::StatusOr<RestBody> EncodeInferResponse(const inference::ModelInferResponse& response,
                                             const RestOutputFormat& format);

// {"name", "version", "extensions"}.
nlohmann::json ServerMetadataToJson(const inference::ServerMetadataResponse& metadata);

// {"name", "versions", "platform", "inputs", "outputs"} and "properties"
// when there are any; tensors as {"name", "datatype", "shape"}.
nlohmann::json ModelMetadataToJson(const inference::ModelMetadataResponse& metadata);

// Serializes `json` compactly; invalid UTF-8 in strings is replaced, never
// thrown on.
std::string DumpJson(const nlohmann::json& json);

}  // namespace bnserve

#endif  // BNSERVE_SERVER_V2_REST_CODEC_H_
