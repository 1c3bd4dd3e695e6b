// gRPC helpers of the RPC-layer tests: a raw call through a generic stub, and
// a fixture with a real server on a loopback port.
#ifndef BNSERVE_TESTS_SERVER_GRPC_TEST_UTIL_H_
#define BNSERVE_TESTS_SERVER_GRPC_TEST_UTIL_H_

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "grpcpp/channel.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/client_context.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/support/byte_buffer.h"
#include "grpcpp/support/status.h"
#include "gtest/gtest.h"
#include "server/bnserve_server.h"
#include "tests/server/server_test_util.h"

namespace bnserve {
namespace testing {

// Calls `method` ("/package.Service/Method") with `request` as the raw
// request bytes, whatever they are, through a generic stub, and returns the
// status; the response's bytes go to `*response` when it is not null.
inline grpc::Status RawUnaryCall(const std::shared_ptr<grpc::Channel>& channel,
                                 const std::string& method, const std::string& request,
                                 std::string* response = nullptr) {
  grpc::GenericStub stub(channel);
  grpc::Slice slice(request);
  grpc::ByteBuffer request_buffer(&slice, 1);
  grpc::ByteBuffer response_buffer;
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
  grpc::Status status;
  absl::Notification done;
  stub.UnaryCall(&context, method, grpc::StubOptions(), &request_buffer, &response_buffer,
                 [&](grpc::Status s) {
                   status = std::move(s);
                   done.Notify();
                 });
  done.WaitForNotification();  // the deadline bounds the wait
  if (response != nullptr) {
    response->clear();
    std::vector<grpc::Slice> slices;
    if (status.ok() && response_buffer.Dump(&slices).ok()) {
      for (const grpc::Slice& s : slices) {
        response->append(reinterpret_cast<const char*>(s.begin()), s.size());
      }
    }
  }
  return status;
}

// grpc.health.v1.Health/Check of `service` (the health messages are tiny:
// request {service}, response {status}; SERVING = 1): the response bytes,
// and the call's status in *status.
inline std::string HealthCheck(const std::shared_ptr<grpc::Channel>& channel,
                               const std::string& service, grpc::Status* status) {
  std::string request;
  if (!service.empty()) {
    request = std::string("\x0a", 1) + static_cast<char>(service.size()) + service;
  }
  std::string response;
  *status = RawUnaryCall(channel, "/grpc.health.v1.Health/Check", request, &response);
  return response;
}

// A BnserveServer on a free loopback port with a fresh registry, and a
// channel to it.
class LoopbackServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    BnserveServerOptions options;
    options.listen = "127.0.0.1:0";
    options.registry_path = TempPath("registry.db");
    options.data_dir = "var/data";
    absl::StatusOr<std::unique_ptr<BnserveServer>> server = BnserveServer::Start(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    channel_ = grpc::CreateChannel("127.0.0.1:" + std::to_string(server_->port()),
                                   grpc::InsecureChannelCredentials());
  }

  std::unique_ptr<BnserveServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
};

}  // namespace testing
}  // namespace bnserve

#endif  // BNSERVE_TESTS_SERVER_GRPC_TEST_UTIL_H_
