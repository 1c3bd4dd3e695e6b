// libFuzzer target: the Open Inference REST infer body (JSON, and Triton's
// binary tensor extension after it). The first byte chooses whether an
// Inference-Header-Content-Length header is sent and its value.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "server/v2_rest_codec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string body(reinterpret_cast<const char*>(data) + 1, size - 1);
  std::string length;
  std::optional<absl::string_view> header;
  if (data[0] & 1) {
    length = absl::StrCat(body.size() * (data[0] >> 1) / 128);
    header = length;
  }
  (void)bnserve::ParseInferRequest(body, header, "model", "1");
  return 0;
}
