#include "server/http_server.h"

#include <civetweb.h>
#include <dlfcn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <netdb.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <deque>
#include <fstream>
#include <iterator>
#include <exception>
#include <mutex>
#include <thread>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/notification.h"
#include "core/logging.h"
#include "core/status_macros.h"
#include "nlohmann/json.hpp"

namespace bnserve {
namespace {

// civetweb's library initialization, once per process (it is reference
// counted; bnserve never needs to undo it).
void InitCivetweb() {
  static std::once_flag once;
  std::call_once(once, [] { mg_init_library(0); });
}

// Loads the stand-ins for the OpenSSL libraries civetweb loads by name
// (server/civetweb_tls/openssl3_ssl.cc), by path: from lib/bnserve next to
// the executable's bin/ (an install, the Docker image: /usr/local/lib/bnserve),
// else from the build tree. Not from the library path: their sonames are
// libssl.so and libcrypto.so, so ldconfig would file them under those names.
// Once per process.
absl::Status LoadCivetwebTlsLibraries() {
  static const absl::Status* const loaded = [] {
    std::string installed;
    char exe[PATH_MAX];
    const ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n > 0) {
      exe[n] = '\0';
      std::string dir(exe);
      dir = dir.substr(0, dir.rfind('/'));
      installed = absl::StrCat(dir, "/../lib/bnserve");
    }
    for (const char* name : {"libbnserve_civetweb_crypto.so", "libbnserve_civetweb_ssl.so"}) {
      std::string tried;
      bool found = false;
      for (const std::string& dir : {installed, std::string(BNSERVE_CIVETWEB_TLS_DIR)}) {
        if (dir.empty()) continue;
        const std::string path = absl::StrCat(dir, "/", name);
        if (dlopen(path.c_str(), RTLD_NOW | RTLD_GLOBAL) != nullptr) {
          found = true;
          break;
        }
        absl::StrAppend(&tried, tried.empty() ? "" : "; ", dlerror());
      }
      if (!found) {
        return new absl::Status(absl::UnavailableError(
            absl::StrCat("HTTPS needs ", name, " in lib/bnserve next to the executable's "
                         "directory or in the build tree: ", tried)));
      }
    }
    return new absl::Status();
  }();
  return *loaded;
}

// civetweb's own diagnostics (a failed bind, a broken connection) go to
// bnserve's log instead of its error log file.
int LogCivetwebMessage(const mg_connection* /*connection*/, const char* message) {
  BNSERVE_LOG(WARNING) << "http: " << message;
  return 1;
}

// "host:port" with a port in [0, 65535] and nothing civetweb would read as
// a list of ports or an option suffix.
absl::Status CheckListenAddress(const std::string& listen) {
  const size_t colon = listen.rfind(':');
  int port = -1;
  if (colon == std::string::npos || colon == 0 ||
      !absl::SimpleAtoi(listen.substr(colon + 1), &port) || port < 0 || port > 65535 ||
      listen.find_first_of(", \t") != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("HTTP listen address \"", listen, "\" is not host:port"));
  }
  return absl::OkStatus();
}

// The path's segments: "/a/b/" -> {"a", "b"}; one trailing '/' is dropped.
std::vector<absl::string_view> PathSegments(absl::string_view path) {
  if (absl::StartsWith(path, "/")) path.remove_prefix(1);
  if (absl::EndsWith(path, "/")) path.remove_suffix(1);
  if (path.empty()) return {};
  return absl::StrSplit(path, '/');
}

std::string PercentDecode(absl::string_view segment) {
  std::string decoded(segment.size() + 1, '\0');
  const int length = mg_url_decode(segment.data(), static_cast<int>(segment.size()),
                                   decoded.data(), static_cast<int>(decoded.size()),
                                   /*is_form_url_encoded=*/0);
  // Decoding never lengthens the text, so the buffer is large enough.
  decoded.resize(length < 0 ? 0 : static_cast<size_t>(length));
  return decoded;
}

void WriteResponse(mg_connection* connection, const HttpResponse& response) {
  mg_response_header_start(connection, response.status);
  mg_response_header_add(connection, "Content-Type", response.content_type.c_str(), -1);
  const std::string length = absl::StrCat(response.body.size());
  if (response.stream) {
    mg_response_header_add(connection, "Transfer-Encoding", "chunked", -1);
  } else {
    mg_response_header_add(connection, "Content-Length", length.c_str(), -1);
  }
  for (const auto& [name, value] : response.headers) {
    mg_response_header_add(connection, name.c_str(), value.c_str(),
                           static_cast<int>(value.size()));
  }
  mg_response_header_send(connection);
  if (response.stream) {
    bool open = true;
    response.stream([&](absl::string_view chunk) {
      // An empty chunk would end the body: skip it.
      if (open && !chunk.empty()) {
        open = mg_send_chunk(connection, chunk.data(), static_cast<unsigned int>(chunk.size())) > 0;
      }
      return open;
    });
    if (open) mg_send_chunk(connection, "", 0);
    return;
  }
  if (!response.body.empty()) mg_write(connection, response.body.data(), response.body.size());
}

// Headers of every static file: the dashboard loads only its own files and
// talks only to this server; hashed assets never change.
void AddStaticHeaders(absl::string_view path, HttpResponse* response) {
  response->headers.emplace_back("X-Content-Type-Options", "nosniff");
  response->headers.emplace_back(
      "Content-Security-Policy",
      "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
      "connect-src 'self'; frame-ancestors 'none'");
  response->headers.emplace_back(
      "Cache-Control", absl::StartsWith(path, "/assets/") ? "public, max-age=31536000, immutable"
                                                          : "no-cache");
}

}  // namespace

class HttpServer::HandlerThreads {
 public:
  explicit HandlerThreads(int count) {
    for (int i = 0; i < count; ++i) {
      threads_.emplace_back([this] {
        pthread_setname_np(pthread_self(), "http-handler");
        Loop();
      });
    }
  }

  // Lets the queued work finish, then joins the threads.
  ~HandlerThreads() {
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
    }
    for (std::thread& thread : threads_) thread.join();
  }

  HandlerThreads(const HandlerThreads&) = delete;
  HandlerThreads& operator=(const HandlerThreads&) = delete;

  // Runs `work` on one of the threads and returns when it has finished.
  void Run(const std::function<void()>& work) {
    Task task{&work, {}};
    {
      absl::MutexLock lock(&mu_);
      queue_.push_back(&task);
    }
    task.done.WaitForNotification();
  }

 private:
  struct Task {
    const std::function<void()>* work;
    absl::Notification done;
  };

  void Loop() {
    while (true) {
      Task* task = nullptr;
      {
        absl::MutexLock lock(&mu_);
        mu_.Await(absl::Condition(
            +[](HandlerThreads* self) ABSL_EXCLUSIVE_LOCKS_REQUIRED(self->mu_) {
              return self->stopping_ || !self->queue_.empty();
            },
            this));
        if (queue_.empty()) return;
        task = queue_.front();
        queue_.pop_front();
      }
      (*task->work)();
      task->done.Notify();
    }
  }

  absl::Mutex mu_;
  std::deque<Task*> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

std::optional<absl::string_view> HttpRequest::Header(absl::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (absl::EqualsIgnoreCase(key, name)) return absl::string_view(value);
  }
  return std::nullopt;
}

HttpResponse HttpResponse::Error(int status, absl::string_view message) {
  HttpResponse response;
  response.status = status;
  // Replace, not throw, on invalid UTF-8: messages may quote user input.
  response.body = nlohmann::json{{"error", std::string(message)}}.dump(
      -1, ' ', false, nlohmann::json::error_handler_t::replace);
  return response;
}

HttpResponse HttpResponse::FromStatus(const absl::Status& status) {
  return Error(HttpStatusFromCode(status.code()), status.message());
}

int HttpStatusFromCode(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk:
      return 200;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kOutOfRange:
      return 400;
    case absl::StatusCode::kUnauthenticated:
      return 401;
    case absl::StatusCode::kPermissionDenied:
      return 403;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kAborted:
      return 409;
    case absl::StatusCode::kResourceExhausted:
      return 429;
    case absl::StatusCode::kCancelled:
      return 499;
    case absl::StatusCode::kUnimplemented:
      return 501;
    case absl::StatusCode::kUnavailable:
      return 503;
    case absl::StatusCode::kDeadlineExceeded:
      return 504;
    case absl::StatusCode::kUnknown:
    case absl::StatusCode::kInternal:
    case absl::StatusCode::kDataLoss:
    default:
      return 500;
  }
}

HttpServer::HttpServer(const HttpServerOptions& options, std::vector<CompiledRoute> routes)
    : options_(options),
      routes_(std::move(routes)),
      handler_threads_(std::make_unique<HandlerThreads>(options.threads)) {}

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(const HttpServerOptions& options,
                                                             std::vector<HttpRoute> routes) {
  RETURN_IF_ERROR(CheckListenAddress(options.listen));
  if (options.threads < 1 || options.max_body_bytes < 0 ||
      options.request_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "HTTP threads and request timeout must be positive, the body limit not negative");
  }
  std::vector<CompiledRoute> compiled;
  for (HttpRoute& route : routes) {
    if (!absl::StartsWith(route.pattern, "/") || route.method.empty() || !route.handler) {
      return absl::InvalidArgumentError(absl::StrCat(
          "HTTP route \"", route.method, " ", route.pattern, "\" needs a method, a handler "
          "and a pattern starting with '/'"));
    }
    CompiledRoute entry;
    entry.method = route.method;
    entry.handler = std::move(route.handler);
    for (absl::string_view segment : PathSegments(route.pattern)) {
      const bool is_param = absl::StartsWith(segment, "{") && absl::EndsWith(segment, "}");
      if (segment.empty() || (is_param && segment.size() < 3)) {
        return absl::InvalidArgumentError(
            absl::StrCat("HTTP route pattern \"", route.pattern, "\" has an empty segment"));
      }
      entry.segments.emplace_back(
          is_param ? std::string(segment.substr(1, segment.size() - 2)) : std::string(segment),
          is_param);
    }
    compiled.push_back(std::move(entry));
  }

  InitCivetweb();
  if (options.tls.has_value()) RETURN_IF_ERROR(LoadCivetwebTlsLibraries());
  std::unique_ptr<HttpServer> server(new HttpServer(options, std::move(compiled)));
  // civetweb's suffix for a TLS port.
  const std::string listening_port = options.listen + (options.tls.has_value() ? "s" : "");
  const std::string threads = absl::StrCat(options.threads);
  const std::string timeout_ms =
      absl::StrCat(absl::ToInt64Milliseconds(options.request_timeout));
  const char* civetweb_options[] = {
      "listening_ports", listening_port.c_str(),
      "num_threads", threads.c_str(),
      "request_timeout_ms", timeout_ms.c_str(),
      "enable_keep_alive", "yes",
      // Small JSON answers: do not wait for Nagle's algorithm.
      "tcp_nodelay", "1",
      // The router decodes each path segment itself, so that "%2F" stays
      // inside its segment.
      "decode_url", "no",
      nullptr};
  mg_callbacks callbacks{};
  callbacks.log_message = &LogCivetwebMessage;
  if (options.tls.has_value()) callbacks.init_ssl = &HttpServer::InitTls;
  mg_init_data init{};
  init.callbacks = &callbacks;
  init.user_data = server.get();
  init.configuration_options = civetweb_options;
  char error_text[256] = "";
  mg_error_data error{};
  error.text = error_text;
  error.text_buffer_size = sizeof(error_text);
  mg_context* context = mg_start2(&init, &error);
  if (context == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("cannot serve HTTP on ", options.listen, ": ", error_text));
  }
  mg_set_request_handler(context, "/", &HttpServer::HandleRequest, server.get());
  mg_server_port ports[1];
  if (mg_get_server_ports(context, 1, ports) < 1) {
    mg_stop(context);
    return absl::UnavailableError(
        absl::StrCat("HTTP server on ", options.listen, " reports no listening port"));
  }
  server->port_ = ports[0].port;
  absl::MutexLock lock(&server->stop_mu_);
  server->context_ = context;
  return server;
}

int HttpServer::InitTls(void* ssl_context, void* self_ptr) {
  auto* self = static_cast<HttpServer*>(self_ptr);
  auto* context = static_cast<SSL_CTX*>(ssl_context);
  const TlsConfig& tls = *self->options_.tls;
  auto bio_of = [](const std::string& pem) {
    return std::unique_ptr<BIO, decltype(&BIO_free)>(
        BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), &BIO_free);
  };
  SSL_CTX_set_min_proto_version(context, TLS1_2_VERSION);
  // The certificate, then the rest of its chain.
  auto chain = bio_of(tls.cert_chain_pem);
  X509* certificate = PEM_read_bio_X509(chain.get(), nullptr, nullptr, nullptr);
  if (certificate == nullptr || SSL_CTX_use_certificate(context, certificate) != 1) {
    X509_free(certificate);
    BNSERVE_LOG(ERROR) << "http: TLS certificate not usable";
    return -1;
  }
  X509_free(certificate);
  while (X509* link = PEM_read_bio_X509(chain.get(), nullptr, nullptr, nullptr)) {
    // The context takes the link.
    if (SSL_CTX_add_extra_chain_cert(context, link) != 1) {
      X509_free(link);
      return -1;
    }
  }
  ERR_clear_error();  // the end of the chain reads as an error
  auto key_bio = bio_of(tls.private_key_pem);
  EVP_PKEY* key = PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr);
  const bool key_ok = key != nullptr && SSL_CTX_use_PrivateKey(context, key) == 1 &&
                      SSL_CTX_check_private_key(context) == 1;
  EVP_PKEY_free(key);
  if (!key_ok) {
    BNSERVE_LOG(ERROR) << "http: TLS key not usable with the certificate";
    return -1;
  }
  if (tls.mutual()) {
    X509_STORE* store = SSL_CTX_get_cert_store(context);
    auto ca_bio = bio_of(tls.client_ca_pem);
    int authorities = 0;
    while (X509* ca = PEM_read_bio_X509(ca_bio.get(), nullptr, nullptr, nullptr)) {
      authorities += X509_STORE_add_cert(store, ca) == 1;
      X509_free(ca);
    }
    ERR_clear_error();
    if (authorities == 0) return -1;
    SSL_CTX_set_verify(context, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  }
  return 1;
}

HttpServer::~HttpServer() { Shutdown(); }

void HttpServer::Shutdown(absl::Duration grace) {
  shutting_down_.store(true, std::memory_order_relaxed);
  absl::MutexLock lock(&stop_mu_);
  if (context_ == nullptr) return;
  {
    absl::MutexLock in_flight_lock(&in_flight_mu_);
    in_flight_mu_.AwaitWithTimeout(
        absl::Condition(
            +[](int* in_flight) { return *in_flight == 0; }, &in_flight_),
        grace);
  }
  // Joins civetweb's workers, each after its current request: no handler
  // runs after this. (The handler threads are joined on destruction.)
  StopCivetweb(context_);
  context_ = nullptr;
}

void HttpServer::StopCivetweb(mg_context* context) {
  // civetweb's accept loop notices the stop flag when poll() returns: after
  // its 2 s timeout, or at once when a connection arrives.
  std::string host = options_.listen.substr(0, options_.listen.rfind(':'));
  if (absl::StartsWith(host, "[") && absl::EndsWith(host, "]")) {
    host = host.substr(1, host.size() - 2);
  }
  if (host == "0.0.0.0") host = "127.0.0.1";
  if (host == "::") host = "::1";
  addrinfo hints{};
  hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* address = nullptr;
  if (getaddrinfo(host.c_str(), absl::StrCat(port_).c_str(), &hints, &address) != 0) {
    address = nullptr;
  }
  absl::Notification stopped;
  std::thread knocker([&] {
    while (address != nullptr &&
           !stopped.WaitForNotificationWithTimeout(absl::Milliseconds(10))) {
      const int fd = socket(address->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (fd < 0) continue;
      connect(fd, address->ai_addr, address->ai_addrlen);
      close(fd);
    }
  });
  mg_stop(context);
  stopped.Notify();
  knocker.join();
  if (address != nullptr) freeaddrinfo(address);
}

int HttpServer::HandleRequest(mg_connection* connection, void* self_ptr) {
  auto* self = static_cast<HttpServer*>(self_ptr);
  {
    absl::MutexLock lock(&self->in_flight_mu_);
    ++self->in_flight_;
  }
  HttpResponse response = self->Serve(connection);
  WriteResponse(connection, response);
  {
    absl::MutexLock lock(&self->in_flight_mu_);
    --self->in_flight_;
  }
  // Nonzero: civetweb considers the request handled.
  return response.status;
}

HttpResponse HttpServer::ServeStaticFile(absl::string_view request_path) const {
  std::vector<std::string> parts;
  for (absl::string_view segment : PathSegments(request_path)) {
    std::string decoded = PercentDecode(segment);
    if (decoded == ".." || decoded == "." || decoded.find('/') != std::string::npos ||
        decoded.find('\0') != std::string::npos) {
      return HttpResponse::Error(404, absl::StrCat("no file for ", request_path));
    }
    parts.push_back(std::move(decoded));
  }
  if (parts.empty()) parts.push_back("index.html");
  char root[PATH_MAX];
  char file[PATH_MAX];
  const std::string wanted =
      absl::StrCat(options_.static_root, "/", absl::StrJoin(parts, "/"));
  struct stat info {};
  if (realpath(options_.static_root.c_str(), root) == nullptr ||
      realpath(wanted.c_str(), file) == nullptr ||
      !absl::StartsWith(file, absl::StrCat(root, "/")) || stat(file, &info) != 0 ||
      !S_ISREG(info.st_mode)) {
    return HttpResponse::Error(404, absl::StrCat("no file for ", request_path));
  }
  std::ifstream in(file, std::ios::binary);
  std::string body((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!in.good() && !in.eof()) {
    return HttpResponse::Error(500, absl::StrCat("cannot read the file for ", request_path));
  }
  HttpResponse response;
  response.content_type = mg_get_builtin_mime_type(file);
  response.body = std::move(body);
  AddStaticHeaders(request_path, &response);
  return response;
}

std::optional<HttpResponse> HttpServer::ReadBody(mg_connection* connection,
                                                 HttpRequest* request) {
  const mg_request_info* info = mg_get_request_info(connection);
  const int64_t limit = options_.max_body_bytes;
  auto too_large = [&] {
    // The rest of the body is not read: the connection cannot carry another
    // request.
    mg_disable_connection_keep_alive(connection);
    return HttpResponse::Error(
        413, absl::StrCat("request body exceeds the server's limit of ", limit, " bytes"));
  };
  if (info->content_length > limit) return too_large();
  if (info->content_length >= 0) {
    request->body.resize(static_cast<size_t>(info->content_length));
    size_t done = 0;
    while (done < request->body.size()) {
      const int n = mg_read(connection, request->body.data() + done, request->body.size() - done);
      if (n <= 0) {
        return HttpResponse::Error(
            400, absl::StrCat("request body ended after ", done, " of ",
                              info->content_length, " bytes"));
      }
      done += static_cast<size_t>(n);
    }
    return std::nullopt;
  }
  // No Content-Length (a chunked body): read until its end, within the limit.
  char buffer[16384];
  while (true) {
    const int n = mg_read(connection, buffer, sizeof(buffer));
    if (n <= 0) break;
    if (static_cast<int64_t>(request->body.size()) + n > limit) return too_large();
    request->body.append(buffer, static_cast<size_t>(n));
  }
  return std::nullopt;
}

HttpResponse HttpServer::Serve(mg_connection* connection) {
  if (shutting_down_.load(std::memory_order_relaxed)) {
    mg_disable_connection_keep_alive(connection);
    return HttpResponse::Error(503, "server shutting down");
  }
  const mg_request_info* info = mg_get_request_info(connection);
  HttpRequest request;
  request.method = info->request_method != nullptr ? info->request_method : "";
  const char* raw_path = info->local_uri_raw != nullptr ? info->local_uri_raw : info->local_uri;
  request.path = raw_path != nullptr ? raw_path : "";
  const std::vector<absl::string_view> segments = PathSegments(request.path);

  const CompiledRoute* match = nullptr;
  std::vector<std::string> allowed;
  for (const CompiledRoute& route : routes_) {
    if (route.segments.size() != segments.size()) continue;
    bool matches = true;
    for (size_t i = 0; i < segments.size() && matches; ++i) {
      const auto& [text, is_param] = route.segments[i];
      matches = is_param ? !segments[i].empty() : segments[i] == text;
    }
    if (!matches) continue;
    if (route.method == request.method) {
      match = &route;
      break;
    }
    allowed.push_back(route.method);
  }
  if (match == nullptr) {
    if (allowed.empty() && !options_.static_root.empty() &&
        request.method == "GET") {
      return ServeStaticFile(request.path);
    }
    if (allowed.empty()) {
      return HttpResponse::Error(404, absl::StrCat("no route for ", request.path));
    }
    HttpResponse response = HttpResponse::Error(
        405, absl::StrCat(request.method, " is not allowed on ", request.path, "; use ",
                          absl::StrJoin(allowed, ", ")));
    response.headers.emplace_back("Allow", absl::StrJoin(allowed, ", "));
    return response;
  }
  for (size_t i = 0; i < segments.size(); ++i) {
    const auto& [name, is_param] = match->segments[i];
    if (is_param) request.path_params[name] = PercentDecode(segments[i]);
  }
  request.headers.reserve(static_cast<size_t>(info->num_headers));
  for (int i = 0; i < info->num_headers; ++i) {
    request.headers.emplace_back(info->http_headers[i].name, info->http_headers[i].value);
  }
  if (std::optional<HttpResponse> error = ReadBody(connection, &request)) return *error;
  request.received = absl::Now();
  HttpResponse response;
  handler_threads_->Run([&] {
    try {
      response = match->handler(request);
    } catch (const std::exception& e) {
      // Handlers report errors as statuses; an exception is a bug, but it
      // must not end the process.
      BNSERVE_LOG(ERROR) << "http handler for " << request.path << " threw: " << e.what();
      response = HttpResponse::Error(500, absl::StrCat("internal error: ", e.what()));
    }
  });
  return response;
}

}  // namespace bnserve
