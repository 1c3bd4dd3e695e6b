// HttpServer over real sockets, spoken to with libcurl: routing and path
// decoding, the answers the server gives by itself (404, 405, 413, 500), the
// body limit with Content-Length and chunked bodies, handler stacks large
// enough for Eigen, concurrency, and shutdown waiting for running handlers.
#include "server/http_server.h"

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "client/http_client.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/status_matchers.h"

namespace bnserve {
namespace {

using ::testing::HasSubstr;

HttpResponse Text(std::string body) {
  HttpResponse response;
  response.content_type = "text/plain";
  response.body = std::move(body);
  return response;
}

// The "error" member of a JSON error body ("" if there is none).
std::string ErrorOf(const HttpReply& reply) {
  nlohmann::json body = nlohmann::json::parse(reply.body, nullptr, /*allow_exceptions=*/false);
  if (!body.is_object() || !body.contains("error") || !body["error"].is_string()) return "";
  return body["error"].get<std::string>();
}

class HttpServerTest : public ::testing::Test {
 protected:
  void Start(std::vector<HttpRoute> routes, int64_t max_body = 1 << 20, int threads = 4) {
    HttpServerOptions options;
    options.listen = "127.0.0.1:0";
    options.max_body_bytes = max_body;
    options.threads = threads;
    absl::StatusOr<std::unique_ptr<HttpServer>> server = HttpServer::Start(options, routes);
    ASSERT_OK(server.status());
    server_ = *std::move(server);
    ASSERT_GT(server_->port(), 0);
  }

  std::string Url(const std::string& path) const {
    return absl::StrCat("http://127.0.0.1:", server_->port(), path);
  }

  HttpReply Call(const std::string& method, const std::string& path, std::string body = "",
                 bool chunked = false) {
    HttpClientRequest request;
    request.method = method;
    request.url = Url(path);
    request.body = std::move(body);
    request.chunked = chunked;
    absl::StatusOr<HttpReply> reply = client_.Send(request);
    EXPECT_OK(reply.status());
    return reply.ok() ? *reply : HttpReply{};
  }

  std::unique_ptr<HttpServer> server_;
  HttpClient client_;
};

TEST_F(HttpServerTest, RoutesByMethodAndPathAndDecodesEachSegment) {
  Start({{"GET", "/v2/models/{model}/versions/{version}",
          [](const HttpRequest& r) {
            return Text(absl::StrCat("model=", r.path_params.at("model"),
                                     " version=", r.path_params.at("version")));
          }},
         {"GET", "/v2/models/{model}",
          [](const HttpRequest& r) { return Text("model=" + r.path_params.at("model")); }},
         {"GET", "/v2", [](const HttpRequest&) { return Text("root"); }}});

  HttpReply reply = Call("GET", "/v2/models/digits/versions/3");
  EXPECT_EQ(reply.status, 200);
  EXPECT_EQ(reply.body, "model=digits version=3");
  EXPECT_EQ(reply.Header("content-type"), "text/plain");
  // %2F is a '/' inside the segment, not a separator; '+' stays '+'.
  EXPECT_EQ(Call("GET", "/v2/models/a%2Fb%20c+d").body, "model=a/b c+d");
  // The query string and one trailing '/' are ignored.
  EXPECT_EQ(Call("GET", "/v2/models/m?x=1").body, "model=m");
  EXPECT_EQ(Call("GET", "/v2/").body, "root");
  EXPECT_EQ(Call("GET", "/v2").body, "root");
}

TEST_F(HttpServerTest, UnknownPathIs404AndWrongMethodIs405WithAllow) {
  Start({{"POST", "/v2/models/{model}/infer", [](const HttpRequest&) { return Text("x"); }},
         {"GET", "/v2/health/live", [](const HttpRequest&) { return Text("live"); }}});

  HttpReply missing = Call("GET", "/v2/nothing/here");
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(missing.Header("Content-Type"), "application/json");
  EXPECT_THAT(ErrorOf(missing), HasSubstr("/v2/nothing/here"));
  // An empty segment never matches a parameter.
  EXPECT_EQ(Call("POST", "/v2/models//infer").status, 404);

  HttpReply wrong = Call("GET", "/v2/models/m/infer");
  EXPECT_EQ(wrong.status, 405);
  EXPECT_EQ(wrong.Header("Allow"), "POST");
  EXPECT_THAT(ErrorOf(wrong), HasSubstr("GET is not allowed"));
  EXPECT_EQ(Call("POST", "/v2/health/live").status, 405);
  EXPECT_EQ(Call("GET", "/v2/health/live").body, "live");
}

TEST_F(HttpServerTest, BodiesUpToTheLimitArriveWholeLargerOnesAre413) {
  Start({{"POST", "/echo",
          [](const HttpRequest& r) {
            HttpResponse response = Text(r.body);
            response.headers.emplace_back("X-Length", absl::StrCat(r.body.size()));
            return response;
          }}},
        /*max_body=*/1000);
  std::string binary(1000, '\0');
  for (size_t i = 0; i < binary.size(); ++i) binary[i] = static_cast<char>(i * 7);

  HttpReply whole = Call("POST", "/echo", binary);
  EXPECT_EQ(whole.status, 200);
  EXPECT_EQ(whole.body, binary);
  HttpReply chunked = Call("POST", "/echo", binary, /*chunked=*/true);
  EXPECT_EQ(chunked.status, 200);
  EXPECT_EQ(chunked.body, binary);

  HttpReply too_large = Call("POST", "/echo", binary + "x");
  EXPECT_EQ(too_large.status, 413);
  EXPECT_THAT(ErrorOf(too_large), HasSubstr("1000 bytes"));
  HttpReply too_large_chunked = Call("POST", "/echo", binary + "x", /*chunked=*/true);
  EXPECT_EQ(too_large_chunked.status, 413);
  // The server serves on (a new connection).
  EXPECT_EQ(Call("POST", "/echo", "ok").body, "ok");
}

TEST_F(HttpServerTest, HandlersGetSeveralHundredKilobytesOfStack) {
  // civetweb's own workers have 100 KiB stacks; an Eigen GEMM may put up to
  // 128 KiB of blocks on the stack. This handler uses 1 MiB.
  Start({{"GET", "/deep", [](const HttpRequest&) {
            volatile char buffer[1 << 20];
            for (size_t i = 0; i < sizeof(buffer); i += 4096) buffer[i] = static_cast<char>(i);
            return Text(absl::StrCat(static_cast<int>(buffer[4096])));
          }}});
  HttpReply reply = Call("GET", "/deep");
  EXPECT_EQ(reply.status, 200);
  EXPECT_EQ(reply.body, "0");
}

TEST_F(HttpServerTest, AThrowingHandlerIs500AndTheServerServesOn) {
  Start({{"GET", "/throw",
          [](const HttpRequest&) -> HttpResponse { throw std::runtime_error("boom"); }},
         {"GET", "/ok", [](const HttpRequest&) { return Text("ok"); }}});
  HttpReply reply = Call("GET", "/throw");
  EXPECT_EQ(reply.status, 500);
  EXPECT_THAT(ErrorOf(reply), HasSubstr("boom"));
  EXPECT_EQ(Call("GET", "/ok").body, "ok");
}

TEST_F(HttpServerTest, HandlersRunConcurrently) {
  // Two handlers that each wait for the other to start: only concurrent
  // threads let both finish.
  std::atomic<int> started{0};
  Start({{"GET", "/meet",
          [&](const HttpRequest&) {
            ++started;
            const absl::Time deadline = absl::Now() + absl::Seconds(10);
            while (started.load() < 2 && absl::Now() < deadline) {
              absl::SleepFor(absl::Milliseconds(1));
            }
            return Text(started.load() >= 2 ? "met" : "alone");
          }}},
        1 << 20, /*threads=*/2);
  HttpReply other;
  std::thread thread([&] {
    HttpClient client;
    HttpClientRequest request;
    request.url = Url("/meet");
    absl::StatusOr<HttpReply> reply = client.Send(request);
    if (reply.ok()) other = *reply;
  });
  HttpReply mine = Call("GET", "/meet");
  thread.join();
  EXPECT_EQ(mine.body, "met");
  EXPECT_EQ(other.body, "met");
}

TEST_F(HttpServerTest, ShutdownAnswers503WaitsForRunningHandlersThenRefusesConnections) {
  absl::Notification entered;
  absl::Notification release;
  Start({{"GET", "/slow", [&](const HttpRequest&) {
            entered.Notify();
            release.WaitForNotificationWithTimeout(absl::Seconds(10));
            return Text("finished");
          }}});
  HttpReply slow;
  std::thread caller([&] { slow = Call("GET", "/slow"); });
  entered.WaitForNotification();
  std::atomic<bool> shut_down{false};
  std::thread stopper([&] {
    server_->Shutdown();
    shut_down = true;
  });
  absl::SleepFor(absl::Milliseconds(200));
  EXPECT_FALSE(shut_down.load()) << "Shutdown returned while a handler was running";
  // Meanwhile a new request is refused with 503.
  HttpClient late_client;
  HttpClientRequest late;
  late.url = Url("/slow");
  absl::StatusOr<HttpReply> refused = late_client.Send(late);
  ASSERT_OK(refused.status());
  EXPECT_EQ(refused->status, 503);
  EXPECT_THAT(ErrorOf(*refused), HasSubstr("shutting down"));
  release.Notify();
  stopper.join();
  caller.join();
  EXPECT_EQ(slow.status, 200);
  EXPECT_EQ(slow.body, "finished");

  HttpClient client;
  HttpClientRequest request;
  request.url = Url("/slow");
  EXPECT_THAT(client.Send(request), testing::StatusIs(absl::StatusCode::kUnavailable));
  server_->Shutdown();  // idempotent
}

TEST(HttpServerStartTest, RefusesBadOptionsAndATakenPort) {
  HttpServerOptions options;
  options.listen = "127.0.0.1";
  EXPECT_THAT(HttpServer::Start(options, {}),
              testing::StatusIs(absl::StatusCode::kInvalidArgument));
  options.listen = "127.0.0.1:70000";
  EXPECT_THAT(HttpServer::Start(options, {}),
              testing::StatusIs(absl::StatusCode::kInvalidArgument));
  options.listen = "127.0.0.1:1,127.0.0.1:2";
  EXPECT_THAT(HttpServer::Start(options, {}),
              testing::StatusIs(absl::StatusCode::kInvalidArgument));
  options.listen = "127.0.0.1:0";
  EXPECT_THAT(HttpServer::Start(options, {{"GET", "no-slash", [](const HttpRequest&) {
                                             return HttpResponse{};
                                           }}}),
              testing::StatusIs(absl::StatusCode::kInvalidArgument));

  absl::StatusOr<std::unique_ptr<HttpServer>> first = HttpServer::Start(options, {});
  ASSERT_OK(first.status());
  options.listen = absl::StrCat("127.0.0.1:", (*first)->port());
  EXPECT_THAT(HttpServer::Start(options, {}),
              testing::StatusIs(absl::StatusCode::kUnavailable));
}

TEST(HttpStatusFromCodeTest, MapsEveryCodeAsGoogleRpcDoes) {
  EXPECT_EQ(HttpStatusFromCode(absl::StatusCode::kOk), 200);
  EXPECT_EQ(HttpStatusFromCode(absl::StatusCode::kInvalidArgument), 400);
  EXPECT_EQ(HttpStatusFromCode(absl::StatusCode::kFailedPrecondition), 400);
  EXPECT_EQ(HttpStatusFromCode(absl::StatusCode::kOutOfRange), 400);
  EXPECT_EQ(HttpStatusFromCode(absl::StatusCode::kUnauthenticated), 401);
  EXPECT_EQ(HttpStatusFromCode(absl::StatusCode::kPermissionDenied), 403);
  EXPECT_EQ(HttpStatusFromCode(absl::StatusCode::kNotFound), 404);
  EXPECT_EQ(HttpStatusFromCode(absl::StatusCode::kAlreadyExists), 409);
  EXPECT_EQ(HttpStatusFromCode(absl::StatusCode::kAborted), 409);
  EXPECT_EQ(HttpStatusFromCode(absl::StatusCode::kResourceExhausted), 429);
  EXPECT_EQ(HttpStatusFromCode(absl::StatusCode::kCancelled), 499);
  EXPECT_EQ(HttpStatusFromCode(absl::StatusCode::kUnimplemented), 501);
  EXPECT_EQ(HttpStatusFromCode(absl::StatusCode::kUnavailable), 503);
  EXPECT_EQ(HttpStatusFromCode(absl::StatusCode::kDeadlineExceeded), 504);
  EXPECT_EQ(HttpStatusFromCode(absl::StatusCode::kUnknown), 500);
  EXPECT_EQ(HttpStatusFromCode(absl::StatusCode::kInternal), 500);
  EXPECT_EQ(HttpStatusFromCode(absl::StatusCode::kDataLoss), 500);

  HttpResponse response = HttpResponse::FromStatus(absl::NotFoundError("no \"x\"\xff"));
  EXPECT_EQ(response.status, 404);
  EXPECT_EQ(response.content_type, "application/json");
  // Invalid UTF-8 is replaced, not thrown on.
  EXPECT_EQ(nlohmann::json::parse(response.body)["error"], "no \"x\"\xEF\xBF\xBD");
}

}  // namespace
}  // namespace bnserve
