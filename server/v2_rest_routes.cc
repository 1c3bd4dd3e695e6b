#include "server/v2_rest_routes.h"

#include <optional>
#include <string>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "server/v2_rest_codec.h"

namespace bnserve {
namespace {

using nlohmann::json;

HttpResponse JsonResponse(int status, const json& body) {
  HttpResponse response;
  response.status = status;
  response.body = DumpJson(body);
  return response;
}

// The path's model name and version ("" when the route has none).
std::string Param(const HttpRequest& request, const char* name) {
  auto it = request.path_params.find(name);
  return it == request.path_params.end() ? std::string() : it->second;
}

HttpResponse ServerLive(OpenInference* open_inference) {
  const bool live = open_inference->ServerLive();
  return JsonResponse(live ? 200 : 503, json{{"live", live}});
}

HttpResponse ServerReady(OpenInference* open_inference) {
  const bool ready = open_inference->ServerReady();
  return JsonResponse(ready ? 200 : 503, json{{"ready", ready}});
}

HttpResponse ModelReady(OpenInference* open_inference, const HttpRequest& request) {
  const std::string model = Param(request, "model");
  absl::StatusOr<bool> ready = open_inference->ModelReady(model, Param(request, "version"));
  if (!ready.ok()) return HttpResponse::FromStatus(ready.status());
  return JsonResponse(*ready ? 200 : 503, json{{"name", model}, {"ready", *ready}});
}

HttpResponse ServerMetadata(OpenInference* open_inference) {
  inference::ServerMetadataResponse metadata;
  open_inference->ServerMetadata(&metadata);
  return JsonResponse(200, ServerMetadataToJson(metadata));
}

HttpResponse ModelMetadata(OpenInference* open_inference, const HttpRequest& request) {
  inference::ModelMetadataRequest metadata_request;
  metadata_request.set_name(Param(request, "model"));
  metadata_request.set_version(Param(request, "version"));
  inference::ModelMetadataResponse metadata;
  if (absl::Status status = open_inference->ModelMetadata(metadata_request, &metadata);
      !status.ok()) {
    return HttpResponse::FromStatus(status);
  }
  return JsonResponse(200, ModelMetadataToJson(metadata));
}

HttpResponse Infer(OpenInference* open_inference, const HttpRequest& request) {
  const std::string model = Param(request, "model");
  const std::string version = Param(request, "version");
  if (std::optional<absl::string_view> encoding = request.Header("Content-Encoding");
      encoding.has_value() && !absl::EqualsIgnoreCase(*encoding, "identity")) {
    const absl::Status refused = absl::InvalidArgumentError(absl::StrCat(
        "Content-Encoding ", *encoding, " is not supported; send the body uncompressed"));
    open_inference->RecordRefused(model, version, InferenceProtocol::kV2Http, refused,
                                  request.received);
    return HttpResponse::Error(415, refused.message());
  }
  absl::StatusOr<RestInferRequest> parsed = ParseInferRequest(
      request.body, request.Header(kInferenceHeaderContentLength), model, version);
  if (!parsed.ok()) {
    open_inference->RecordRefused(model, version, InferenceProtocol::kV2Http, parsed.status(),
                                  request.received);
    return HttpResponse::FromStatus(parsed.status());
  }
  inference::ModelInferResponse infer_response;
  if (absl::Status status = open_inference->ModelInfer(
          parsed->request, &infer_response, InferenceProtocol::kV2Http, request.received);
      !status.ok()) {
    return HttpResponse::FromStatus(status);
  }
  absl::StatusOr<RestBody> body = EncodeInferResponse(infer_response, parsed->output_format);
  if (!body.ok()) return HttpResponse::FromStatus(body.status());
  HttpResponse response;
  if (body->has_binary_data()) {
    response.content_type = "application/octet-stream";
    response.headers.emplace_back(kInferenceHeaderContentLength, absl::StrCat(body->json_size));
  }
  response.body = std::move(body->body);
  return response;
}

}  // namespace

std::vector<HttpRoute> V2RestRoutes(OpenInference* open_inference,
                                    std::function<std::string()> metrics) {
  OpenInference* oi = open_inference;
  auto model_ready = [oi](const HttpRequest& r) { return ModelReady(oi, r); };
  auto model_metadata = [oi](const HttpRequest& r) { return ModelMetadata(oi, r); };
  auto infer = [oi](const HttpRequest& r) { return Infer(oi, r); };
  std::vector<HttpRoute> routes = {
      {"GET", "/v2/health/live", [oi](const HttpRequest&) { return ServerLive(oi); }},
      {"GET", "/v2/health/ready", [oi](const HttpRequest&) { return ServerReady(oi); }},
      {"GET", "/v2", [oi](const HttpRequest&) { return ServerMetadata(oi); }},
      {"GET", "/v2/models/{model}", model_metadata},
      {"GET", "/v2/models/{model}/versions/{version}", model_metadata},
      {"GET", "/v2/models/{model}/ready", model_ready},
      {"GET", "/v2/models/{model}/versions/{version}/ready", model_ready},
      {"POST", "/v2/models/{model}/infer", infer},
      {"POST", "/v2/models/{model}/versions/{version}/infer", infer},
  };
  if (metrics) {
    routes.push_back({"GET", "/metrics", [metrics = std::move(metrics)](const HttpRequest&) {
                        HttpResponse response;
                        response.content_type = kPrometheusTextContentType;
                        response.body = metrics();
                        return response;
                      }});
  }
  return routes;
}

}  // namespace bnserve
