// HttpServer: bnserve's HTTP/1.1 port, on civetweb. It owns the listening
// socket and civetweb's worker threads, matches each request against a
// route table (method + path pattern), reads the body within a size limit
// and writes the handler's HttpResponse. It knows nothing of inference: the
// Open Inference Protocol's REST routes (v2_rest_routes.h) and /metrics are
// routes handed to it.
//
//   HttpServerOptions options;
//   options.listen = "127.0.0.1:0";            // any free port
//   std::vector<HttpRoute> routes = {
//       {"GET", "/v2/models/{model}/ready", [](const HttpRequest& r) { ... }}};
//   ASSIGN_OR_RETURN(std::unique_ptr<HttpServer> http,
//                    HttpServer::Start(options, std::move(routes)));
//   ... http->port() ...
//   http->Shutdown();
//
// Patterns are '/'-separated segments; a segment "{name}" matches any one
// non-empty segment, which the handler reads percent-decoded ('+' stays '+';
// "%2F" is a '/' inside the segment, not a separator) as
// request.path_params["name"]. One trailing '/' and the query string are
// ignored. Answers the server gives by itself, each a JSON body
// {"error": "..."}:
//   404  no pattern matches the path
//   405  a pattern matches but not with this method (with an Allow header)
//   413  a body longer than max_body_bytes (by Content-Length, or while a
//        chunked body is read); the connection is closed after it
//   400  a body that ends before its Content-Length
//   500  a handler that throws (the message names the exception)
//   503  every request once Shutdown has begun
// With options.static_root set, a GET that no pattern matches is
// answered with the file under it (static_root/index.html for "/"), the
// dashboard's files: 404 for a missing file, and for a path with a ".."
// segment or one whose real path (symbolic links resolved) leaves the root.
//
// A handler may answer with a streamed body (HttpResponse::stream): the
// headers go first with chunked transfer encoding, then each chunk as the
// stream writes it, on civetweb's worker thread (100 KiB stack: no Eigen),
// until the stream returns.
// A handler's error statuses go through HttpResponse::FromStatus, the one
// place an absl::StatusCode becomes an HTTP status (HttpStatusFromCode).
//
// Threads: civetweb's `threads` workers read requests and write responses;
// the handlers run on as many threads of HttpServer's own, which have the
// platform's default stack size: Debian's civetweb gives its workers 100 KiB
// stacks (USE_STACK_SIZE 102400), less than Eigen's stack-allocated GEMM
// blocks need, so a forward pass on a civetweb worker overflows its stack.
//
// Shutdown first refuses new requests (503) and lets the running ones finish
// and write their answers, for up to a grace period, and only then stops
// civetweb (which would drop an answer still being written).
//
// Thread-safety: handlers run concurrently on up to `threads` threads and
// must be thread-safe. Shutdown may be called from any thread, once or
// more; it returns when no handler is running any more.
#ifndef BNSERVE_SERVER_HTTP_SERVER_H_
#define BNSERVE_SERVER_HTTP_SERVER_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/tls_config.h"

struct mg_connection;
struct mg_context;

namespace bnserve {

struct HttpServerOptions {
  // host:port ("127.0.0.1:0" picks a free port).
  std::string listen = "127.0.0.1:8000";
  // civetweb worker threads: requests (and kept-alive connections) served at
  // once.
  int threads = 16;
  // A request body above this is 413.
  int64_t max_body_bytes = int64_t{64} << 20;
  // civetweb's request_timeout_ms: the longest a read or write of a request
  // may wait for the peer.
  absl::Duration request_timeout = absl::Seconds(30);
  // The directory of static files for unmatched GETs (see above); empty:
  // none.
  std::string static_root;
  // HTTPS with this certificate and key (TLS 1.2 or later); with a client CA
  // also mutual TLS: a client without a certificate that chains to it is
  // refused in the handshake. nullopt: plain HTTP.
  std::optional<TlsConfig> tls;
};

struct HttpRequest {
  std::string method;
  // The path as sent (not decoded), without the query string.
  std::string path;
  // The decoded segments the pattern's "{name}"s matched.
  absl::flat_hash_map<std::string, std::string> path_params;
  // Header names as sent; Header() compares them case-insensitively.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // When the body had been read and the handler's turn began.
  absl::Time received;

  // The first header called `name` (any case), if any.
  std::optional<absl::string_view> Header(absl::string_view name) const;
};

// Sends one chunk of a streamed body; false once the peer is gone (stop
// writing then).
using HttpChunkWriter = std::function<bool(absl::string_view chunk)>;

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  // Extra headers (Content-Type and Content-Length are set from the fields).
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // When set, the body is not `body` but what this writes, sent as it is
  // written (Transfer-Encoding: chunked). Runs after the handler returned,
  // on civetweb's worker thread.
  std::function<void(const HttpChunkWriter& write)> stream;

  // `status` with the body {"error": message}.
  static HttpResponse Error(int status, absl::string_view message);
  // An error status's HTTP status (HttpStatusFromCode) and its message as
  // Error() gives them. REQUIRES: !status.ok().
  static HttpResponse FromStatus(const absl::Status& status);
};

// The HTTP status of an absl::StatusCode, as google/rpc/code.proto maps
// them: InvalidArgument, FailedPrecondition, OutOfRange 400; Unauthenticated
// 401; PermissionDenied 403; NotFound 404; AlreadyExists, Aborted 409;
// ResourceExhausted 429; Cancelled 499; Unimplemented 501; Unavailable 503;
// DeadlineExceeded 504; Unknown, Internal, DataLoss 500; Ok 200.
int HttpStatusFromCode(absl::StatusCode code);

using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;

struct HttpRoute {
  std::string method;   // "GET", "POST", ...
  std::string pattern;  // "/v2/models/{model}/infer"
  HttpHandler handler;
};

class HttpServer {
 public:
  // Binds options.listen and starts serving `routes` (the first route that
  // matches wins). InvalidArgument for bad options or a malformed pattern;
  // Unavailable if civetweb cannot start (the port is taken, a bad address).
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(const HttpServerOptions& options,
                                                           std::vector<HttpRoute> routes);

  // Shutdown().
  ~HttpServer();

  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // The bound TCP port.
  int port() const { return port_; }

  // From now on every new request is 503 "server shutting down"; waits up
  // to `grace` for the requests in progress to be answered; then stops
  // civetweb, which waits for any handler still running and closes every
  // connection. Idempotent.
  void Shutdown(absl::Duration grace = absl::Seconds(5));

 private:
  struct CompiledRoute {
    std::string method;
    // A segment is a literal, or a parameter name when `is_param`.
    std::vector<std::pair<std::string, bool>> segments;
    HttpHandler handler;
  };

  // The threads handlers run on (see above).
  class HandlerThreads;

  HttpServer(const HttpServerOptions& options, std::vector<CompiledRoute> routes);

  // civetweb's init_ssl callback: the certificate, key and client CA of
  // options_.tls into civetweb's SSL_CTX. 1 when done, -1 on an error.
  static int InitTls(void* ssl_context, void* self);
  // civetweb's callback for every request.
  static int HandleRequest(mg_connection* connection, void* self);
  // mg_stop(context), without civetweb's wait of up to 2 s for its accept
  // loop's poll() timeout: connects to the port until it has stopped.
  void StopCivetweb(mg_context* context);
  // The response for one request (routing, body, handler).
  HttpResponse Serve(mg_connection* connection);
  // The static file for `request_path` under options_.static_root.
  HttpResponse ServeStaticFile(absl::string_view request_path) const;
  // Reads the body into request->body: 413 or 400 as described above.
  std::optional<HttpResponse> ReadBody(mg_connection* connection, HttpRequest* request);

  const HttpServerOptions options_;
  const std::vector<CompiledRoute> routes_;
  std::unique_ptr<HandlerThreads> handler_threads_;
  std::atomic<bool> shutting_down_{false};
  absl::Mutex in_flight_mu_;
  // Requests between HandleRequest's start and the end of their answer.
  int in_flight_ ABSL_GUARDED_BY(in_flight_mu_) = 0;
  absl::Mutex stop_mu_;
  mg_context* context_ ABSL_GUARDED_BY(stop_mu_) = nullptr;
  int port_ = 0;
};

}  // namespace bnserve

#endif  // BNSERVE_SERVER_HTTP_SERVER_H_
