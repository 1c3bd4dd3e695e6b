#include "server/grpc_connect_gateway.h"

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/support/byte_buffer.h>
#include <google/protobuf/descriptor.h>
#include <google/protobuf/dynamic_message.h>
#include <google/protobuf/message.h>
#include <google/protobuf/util/json_util.h>

#include <chrono>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "nlohmann/json.hpp"

namespace bnserve {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::Message;
using google::protobuf::MethodDescriptor;

// Connect's end-of-stream flag and compressed-message flag.
constexpr uint8_t kEndStreamFlag = 0x02;
constexpr uint8_t kCompressedFlag = 0x01;

// Connect's name of a status code.
const char* ConnectCodeName(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kCancelled:
      return "canceled";
    case absl::StatusCode::kInvalidArgument:
      return "invalid_argument";
    case absl::StatusCode::kDeadlineExceeded:
      return "deadline_exceeded";
    case absl::StatusCode::kNotFound:
      return "not_found";
    case absl::StatusCode::kAlreadyExists:
      return "already_exists";
    case absl::StatusCode::kPermissionDenied:
      return "permission_denied";
    case absl::StatusCode::kResourceExhausted:
      return "resource_exhausted";
    case absl::StatusCode::kFailedPrecondition:
      return "failed_precondition";
    case absl::StatusCode::kAborted:
      return "aborted";
    case absl::StatusCode::kOutOfRange:
      return "out_of_range";
    case absl::StatusCode::kUnimplemented:
      return "unimplemented";
    case absl::StatusCode::kInternal:
      return "internal";
    case absl::StatusCode::kUnavailable:
      return "unavailable";
    case absl::StatusCode::kDataLoss:
      return "data_loss";
    case absl::StatusCode::kUnauthenticated:
      return "unauthenticated";
    case absl::StatusCode::kUnknown:
    default:
      return "unknown";
  }
}

absl::Status FromGrpc(const grpc::Status& status) {
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      status.error_message());
}

// {"code": ..., "message": ...}, Connect's error object.
nlohmann::json ErrorJson(const absl::Status& status) {
  nlohmann::json error = {{"code", ConnectCodeName(status.code())}};
  if (!status.message().empty()) error["message"] = std::string(status.message());
  return error;
}

std::string Dump(const nlohmann::json& json) {
  // Messages may quote user input: replace invalid UTF-8, never throw.
  return json.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// A unary call's error response.
HttpResponse UnaryError(const absl::Status& status, int http_status = 0) {
  HttpResponse response;
  response.status = http_status != 0 ? http_status : HttpStatusFromCode(status.code());
  response.content_type = "application/json";
  response.body = Dump(ErrorJson(status));
  return response;
}

std::string Envelope(uint8_t flags, absl::string_view payload) {
  std::string out;
  out.reserve(5 + payload.size());
  out.push_back(static_cast<char>(flags));
  const uint32_t size = static_cast<uint32_t>(payload.size());
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>((size >> shift) & 0xff));
  out.append(payload.data(), payload.size());
  return out;
}

std::string EndStream(const absl::Status& status) {
  nlohmann::json end = nlohmann::json::object();
  if (!status.ok()) end["error"] = ErrorJson(status);
  return Envelope(kEndStreamFlag, Dump(end));
}

// The media type without parameters, lower case: "application/json".
std::string MediaType(const HttpRequest& request) {
  absl::string_view type = request.Header("content-type").value_or("");
  type = type.substr(0, type.find(';'));
  return absl::AsciiStrToLower(absl::StripAsciiWhitespace(type));
}

std::unique_ptr<Message> NewMessage(const Descriptor* type) {
  const Message* prototype =
      google::protobuf::MessageFactory::generated_factory()->GetPrototype(type);
  return std::unique_ptr<Message>(prototype->New());
}

// The request payload (JSON or binary) as the binary message the call sends.
absl::StatusOr<std::string> DecodeMessage(bool json, const Descriptor* type,
                                          absl::string_view payload) {
  std::unique_ptr<Message> message = NewMessage(type);
  if (json) {
    google::protobuf::util::JsonParseOptions options;
    options.ignore_unknown_fields = true;
    const auto parsed = google::protobuf::util::JsonStringToMessage(
        google::protobuf::StringPiece(payload.data(), payload.size()), message.get(), options);
    if (!parsed.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("the request is not a ", type->full_name(),
                                                     " in JSON: ", parsed.ToString()));
    }
  } else if (!message->ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
    return absl::InvalidArgumentError(
        absl::StrCat("the request is not a binary ", type->full_name()));
  }
  return message->SerializeAsString();
}

// A response message (binary, as received) in the codec's form.
absl::StatusOr<std::string> EncodeMessage(bool json, const Descriptor* type,
                                          const std::string& serialized) {
  if (!json) return serialized;
  std::unique_ptr<Message> message = NewMessage(type);
  if (!message->ParseFromString(serialized)) {
    return absl::InternalError(absl::StrCat("the service answered no valid ", type->full_name()));
  }
  std::string out;
  const auto printed = google::protobuf::util::MessageToJsonString(*message, &out);
  if (!printed.ok()) {
    return absl::InternalError(absl::StrCat("cannot write ", type->full_name(),
                                            " as JSON: ", printed.ToString()));
  }
  return out;
}

// Checks the headers every Connect request shares.
absl::Status CheckConnectHeaders(const HttpRequest& request, absl::string_view encoding_header) {
  if (std::optional<absl::string_view> version = request.Header("connect-protocol-version")) {
    if (absl::StripAsciiWhitespace(*version) != "1") {
      return absl::InvalidArgumentError(
          absl::StrCat("Connect-Protocol-Version \"", *version, "\" is not supported; use 1"));
    }
  }
  if (std::optional<absl::string_view> encoding = request.Header(encoding_header)) {
    const std::string value = absl::AsciiStrToLower(absl::StripAsciiWhitespace(*encoding));
    if (!value.empty() && value != "identity") {
      return absl::UnimplementedError(absl::StrCat(
          encoding_header, " \"", *encoding, "\" is not supported; send identity"));
    }
  }
  if (std::optional<absl::string_view> timeout = request.Header("connect-timeout-ms")) {
    int64_t ms = 0;
    if (timeout->size() > 10 || !absl::SimpleAtoi(*timeout, &ms) || ms <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("Connect-Timeout-Ms \"", *timeout, "\" is not 1 to 10 digits"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

ConnectGateway::ConnectGateway(std::shared_ptr<grpc::Channel> channel,
                               std::vector<std::string> service_names, int64_t max_message_bytes)
    : channel_(std::move(channel)),
      stub_(channel_),
      service_names_(std::move(service_names)),
      max_message_bytes_(max_message_bytes) {}

std::vector<HttpRoute> ConnectGateway::Routes() {
  std::vector<HttpRoute> routes;
  for (const std::string& name : service_names_) {
    const google::protobuf::ServiceDescriptor* service =
        google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(name);
    if (service == nullptr) continue;
    for (int i = 0; i < service->method_count(); ++i) {
      const MethodDescriptor* method = service->method(i);
      if (method->client_streaming()) continue;
      HttpRoute route;
      route.method = "POST";
      route.pattern = absl::StrCat("/", service->full_name(), "/", method->name());
      if (method->server_streaming()) {
        route.handler = [this, method](const HttpRequest& r) { return ServerStreaming(method, r); };
      } else {
        route.handler = [this, method](const HttpRequest& r) { return Unary(method, r); };
      }
      routes.push_back(std::move(route));
    }
  }
  return routes;
}

void ConnectGateway::Shutdown() {
  absl::MutexLock lock(&mu_);
  shut_down_ = true;
  for (grpc::ClientContext* context : calls_) context->TryCancel();
}

bool ConnectGateway::ShutDown() {
  absl::MutexLock lock(&mu_);
  return shut_down_;
}

bool ConnectGateway::Track(grpc::ClientContext* context) {
  absl::MutexLock lock(&mu_);
  if (shut_down_) return false;
  calls_.insert(context);
  return true;
}

void ConnectGateway::Untrack(grpc::ClientContext* context) {
  absl::MutexLock lock(&mu_);
  calls_.erase(context);
}

grpc::Status ConnectGateway::Call(const MethodDescriptor* method, const HttpRequest& http_request,
                                  const std::string& request,
                                  const std::function<bool(const std::string&)>& on_message) {
  grpc::ClientContext context;
  if (std::optional<absl::string_view> authorization = http_request.Header("authorization")) {
    context.AddMetadata("authorization", std::string(*authorization));
  }
  int64_t timeout_ms = 0;
  if (absl::SimpleAtoi(http_request.Header("connect-timeout-ms").value_or(""), &timeout_ms) &&
      timeout_ms > 0) {
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::milliseconds(timeout_ms));
  }
  if (!Track(&context)) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "server shutting down");

  grpc::CompletionQueue queue;
  // One operation is pending at a time: each Next() is that operation's.
  auto wait = [&queue] {
    void* tag = nullptr;
    bool ok = false;
    return queue.Next(&tag, &ok) && ok;
  };
  void* const tag = &context;
  const std::string path = absl::StrCat("/", method->service()->full_name(), "/", method->name());
  std::unique_ptr<grpc::GenericClientAsyncReaderWriter> call =
      stub_.PrepareCall(&context, path, &queue);
  call->StartCall(tag);
  bool ok = wait();
  if (ok) {
    grpc::Slice slice(request);
    grpc::ByteBuffer buffer(&slice, 1);
    call->Write(buffer, tag);
    ok = wait();
  }
  if (ok) {
    call->WritesDone(tag);
    ok = wait();
  }
  bool wanted = true;
  while (ok) {
    grpc::ByteBuffer buffer;
    call->Read(&buffer, tag);
    if (!wait()) break;
    if (!wanted) continue;
    grpc::Slice slice;
    if (!buffer.DumpToSingleSlice(&slice).ok()) continue;
    const std::string message(reinterpret_cast<const char*>(slice.begin()), slice.size());
    if (!on_message(message)) {
      wanted = false;
      context.TryCancel();
    }
  }
  grpc::Status status;
  call->Finish(&status, tag);
  wait();
  Untrack(&context);
  queue.Shutdown();
  void* ignored_tag = nullptr;
  bool ignored_ok = false;
  while (queue.Next(&ignored_tag, &ignored_ok)) {
  }
  return status;
}

HttpResponse ConnectGateway::Unary(const MethodDescriptor* method, const HttpRequest& request) {
  const std::string media_type = MediaType(request);
  if (media_type != "application/json" && media_type != "application/proto") {
    HttpResponse refused = UnaryError(
        absl::UnimplementedError(absl::StrCat("Content-Type \"", media_type,
                                              "\" is not supported; use application/json or "
                                              "application/proto")),
        415);
    refused.headers.emplace_back("Accept-Post", "application/json, application/proto");
    return refused;
  }
  const bool json = media_type == "application/json";
  if (absl::Status headers = CheckConnectHeaders(request, "content-encoding"); !headers.ok()) {
    return UnaryError(headers);
  }
  absl::StatusOr<std::string> message = DecodeMessage(json, method->input_type(), request.body);
  if (!message.ok()) return UnaryError(message.status());

  std::optional<std::string> answer;
  const grpc::Status status = Call(method, request, *message, [&](const std::string& m) {
    answer = m;
    return true;
  });
  if (!status.ok()) return UnaryError(FromGrpc(status));
  if (!answer.has_value()) return UnaryError(absl::InternalError("the service sent no message"));
  absl::StatusOr<std::string> body = EncodeMessage(json, method->output_type(), *answer);
  if (!body.ok()) return UnaryError(body.status());
  HttpResponse response;
  response.content_type = json ? "application/json" : "application/proto";
  response.body = *std::move(body);
  return response;
}

HttpResponse ConnectGateway::ServerStreaming(const MethodDescriptor* method,
                                             const HttpRequest& request) {
  const std::string media_type = MediaType(request);
  if (media_type != "application/connect+json" && media_type != "application/connect+proto") {
    HttpResponse refused = UnaryError(
        absl::UnimplementedError(absl::StrCat(
            "Content-Type \"", media_type,
            "\" is not supported; use application/connect+json or application/connect+proto")),
        415);
    refused.headers.emplace_back("Accept-Post",
                                 "application/connect+json, application/connect+proto");
    return refused;
  }
  const bool json = media_type == "application/connect+json";
  HttpResponse response;
  response.content_type = media_type;
  // Errors of a streaming call are in its end-of-stream message, with 200.
  auto end_with = [&response](const absl::Status& status) {
    response.body = EndStream(status);
    return response;
  };
  if (absl::Status headers = CheckConnectHeaders(request, "connect-content-encoding");
      !headers.ok()) {
    return end_with(headers);
  }
  const std::string& body = request.body;
  if (body.size() < 5) return end_with(absl::InvalidArgumentError("the request has no envelope"));
  const uint8_t flags = static_cast<uint8_t>(body[0]);
  uint64_t size = 0;
  for (int i = 1; i < 5; ++i) size = (size << 8) | static_cast<uint8_t>(body[i]);
  if (flags & kCompressedFlag) {
    return end_with(absl::UnimplementedError("compressed messages are not supported"));
  }
  if (flags != 0 || size != body.size() - 5) {
    return end_with(absl::InvalidArgumentError(
        "the request must be exactly one uncompressed envelope (flags 0, then its length)"));
  }
  if (static_cast<int64_t>(size) > max_message_bytes_) {
    return end_with(absl::ResourceExhaustedError(
        absl::StrCat("the request message exceeds ", max_message_bytes_, " bytes")));
  }
  absl::StatusOr<std::string> message =
      DecodeMessage(json, method->input_type(), absl::string_view(body).substr(5));
  if (!message.ok()) return end_with(message.status());

  HttpRequest call_request = request;
  call_request.body.clear();
  response.stream = [this, method, json, call_request = std::move(call_request),
                     message = *std::move(message)](const HttpChunkWriter& write) {
    absl::Status failure;
    const grpc::Status status = Call(method, call_request, message, [&](const std::string& m) {
      absl::StatusOr<std::string> encoded = EncodeMessage(json, method->output_type(), m);
      if (!encoded.ok()) {
        failure = encoded.status();
        return false;
      }
      return write(Envelope(0, *encoded));
    });
    absl::Status end = !failure.ok() ? failure : FromGrpc(status);
    if (end.code() == absl::StatusCode::kCancelled && ShutDown()) {
      end = absl::UnavailableError("server shutting down");
    }
    write(EndStream(end));
  };
  return response;
}

}  // namespace bnserve
