// The HTTP routes of bnserve's HTTP port: the Open Inference Protocol's REST
// API (specification/protocol/inference_rest.md) over OpenInference, and
// Prometheus's GET /metrics. Each route parses its request once (the path's
// model and version; for /infer the body, through v2_rest_codec.h), calls
// the one OpenInference method that answers it, and writes the answer as
// JSON (or, for /infer, JSON plus binary tensor data). Errors are the
// statuses OpenInference and the codec return, made HTTP statuses by
// HttpResponse::FromStatus only here.
//
//   GET  /v2/health/live                                 200 {"live": true}
//   GET  /v2/health/ready                                200 {"ready": true}, or 503
//                                                        {"ready": false}
//   GET  /v2/models/{m}[/versions/{v}]/ready             200 {"name", "ready": true}, or
//                                                        503 {"name", "ready": false}
//   GET  /v2                                             server metadata
//   GET  /v2/models/{m}[/versions/{v}]                   model metadata
//   POST /v2/models/{m}[/versions/{v}]/infer             inference
//   GET  /metrics                                        text/plain; version=0.0.4
//
// (The REST document's server-ready object reads {"live": $bool}, a slip
// for the "ready" every implementation answers.) A not-ready answer is 503
// so that an HTTP readiness probe, which passes on 2xx and 3xx, fails.
// /infer refuses a Content-Encoding other than identity (415). Every /infer
// that reaches its route is recorded once in the metrics as protocol v2_http:
// by ModelInfer, or by RecordRefused when the body does not parse (a 413,
// answered by HttpServer before the route, is not).
// GET /metrics serves `metrics()`, the text ServerMetrics exposes.
//
// Thread-safety: the routes are as thread-safe as OpenInference and the
// metrics function, which they call concurrently.
#ifndef BNSERVE_SERVER_V2_REST_ROUTES_H_
#define BNSERVE_SERVER_V2_REST_ROUTES_H_

#include <functional>
#include <string>
#include <vector>

#include "server/http_server.h"
#include "server/open_inference.h"

namespace bnserve {

// Prometheus's text exposition format, the Content-Type of GET /metrics.
inline constexpr const char* kPrometheusTextContentType =
    "text/plain; version=0.0.4; charset=utf-8";

// The V2 routes over `open_inference` (which must outlive the routes), and
// GET /metrics serving `metrics()` when `metrics` is set (no /metrics route
// otherwise).
std::vector<HttpRoute> V2RestRoutes(OpenInference* open_inference,
                                    std::function<std::string()> metrics);

}  // namespace bnserve

#endif  // BNSERVE_SERVER_V2_REST_ROUTES_H_
