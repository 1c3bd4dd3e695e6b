// HttpClient: a blocking HTTP/1.1 client on libcurl, for the load tool's
// REST measurements and the HTTP tests. Each client is one libcurl easy
// handle, so consecutive calls reuse one kept-alive TCP connection (as
// tritonclient and any load generator do).
//
//   HttpClient client;
//   HttpClientRequest request;
//   request.method = "POST";
//   request.url = "http://127.0.0.1:8000/v2/models/digits/infer";
//   request.body = json_text;
//   ASSIGN_OR_RETURN(HttpReply reply, client.Send(request));
//   ... reply.status, reply.Header("Content-Type"), reply.body ...
//
// Thread-safety: not thread-safe; use one client per thread.
#ifndef BNSERVE_CLIENT_HTTP_CLIENT_H_
#define BNSERVE_CLIENT_HTTP_CLIENT_H_

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace bnserve {

struct HttpClientRequest {
  std::string method = "GET";
  std::string url;
  // Sent when non-empty, or for any POST.
  std::string body;
  // "Name: value" lines.
  std::vector<std::string> headers;
  // Send the body with Transfer-Encoding: chunked instead of a
  // Content-Length.
  bool chunked = false;
  absl::Duration timeout = absl::Seconds(30);
};

struct HttpReply {
  long status = 0;
  // The last response's headers (after any 100 Continue), names as sent.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;

  // The first header called `name` (any case), if any.
  std::optional<std::string> Header(absl::string_view name) const;
};

class HttpClient {
 public:
  HttpClient();
  ~HttpClient();

  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Sends the request and reads the whole reply. Unavailable when no reply
  // came (refused, reset, timed out), with libcurl's message; any HTTP
  // status is a reply.
  absl::StatusOr<HttpReply> Send(const HttpClientRequest& request);

 private:
  void* curl_;  // CURL*
};

}  // namespace bnserve

#endif  // BNSERVE_CLIENT_HTTP_CLIENT_H_
