#include "server/v2_rest_codec.h"

#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/status_macros.h"

namespace bnserve {
namespace {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "binary tensor data are little-endian, as this host must be");

using nlohmann::json;
using ParameterMap = google::protobuf::Map<std::string, inference::InferParameter>;

constexpr const char* kBinaryDataSize = "binary_data_size";
constexpr const char* kBinaryData = "binary_data";
constexpr const char* kBinaryDataOutput = "binary_data_output";

// Deeper tensors are refused before any nesting is walked.
constexpr size_t kMaxRank = 32;

absl::Status Invalid(const std::string& where, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(where, ": ", what));
}

// Bytes per element; 0 for BYTES (variable); nullopt for an unknown datatype.
std::optional<size_t> ElementSize(const std::string& datatype) {
  static const auto* sizes = new absl::flat_hash_map<std::string, size_t>{
      {"BOOL", 1},  {"UINT8", 1},  {"UINT16", 2}, {"UINT32", 4}, {"UINT64", 8},
      {"INT8", 1},  {"INT16", 2},  {"INT32", 4},  {"INT64", 8},  {"FP16", 2},
      {"BF16", 2},  {"FP32", 4},   {"FP64", 8},   {"BYTES", 0}};
  auto it = sizes->find(datatype);
  if (it == sizes->end()) return std::nullopt;
  return it->second;
}

// ---- parameters ----------------------------------------------------------

absl::StatusOr<inference::InferParameter> ParameterFromJson(const json& value,
                                                            const std::string& where) {
  inference::InferParameter parameter;
  switch (value.type()) {
    case json::value_t::boolean:
      parameter.set_bool_param(value.get<bool>());
      break;
    case json::value_t::number_integer:
      parameter.set_int64_param(value.get<int64_t>());
      break;
    case json::value_t::number_unsigned: {
      const uint64_t u = value.get<uint64_t>();
      if (u <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        parameter.set_int64_param(static_cast<int64_t>(u));
      } else {
        parameter.set_uint64_param(u);
      }
      break;
    }
    case json::value_t::number_float:
      parameter.set_double_param(value.get<double>());
      break;
    case json::value_t::string:
      parameter.set_string_param(value.get<std::string>());
      break;
    default:
      return Invalid(where, absl::StrCat("a parameter must be a string, number or boolean, not ",
                                         value.type_name()));
  }
  return parameter;
}

// Parses `object` (if present) into `parameters`.
absl::Status ParseParameters(const json& parent, const std::string& where,
                             ParameterMap* parameters) {
  auto it = parent.find("parameters");
  if (it == parent.end()) return absl::OkStatus();
  const std::string here = absl::StrCat(where, "parameters");
  if (!it->is_object()) return Invalid(here, "must be an object");
  for (auto member = it->begin(); member != it->end(); ++member) {
    ASSIGN_OR_RETURN(inference::InferParameter parameter,
                     ParameterFromJson(member.value(), absl::StrCat(here, ".", member.key())));
    (*parameters)[member.key()] = std::move(parameter);
  }
  return absl::OkStatus();
}

// Removes `name` from `parameters` and returns it as a bool (false when
// absent).
absl::StatusOr<bool> TakeBoolParameter(ParameterMap* parameters, const char* name,
                                       const std::string& where) {
  auto it = parameters->find(name);
  if (it == parameters->end()) return false;
  if (it->second.parameter_choice_case() != inference::InferParameter::kBoolParam) {
    return Invalid(absl::StrCat(where, "parameters.", name), "must be a boolean");
  }
  const bool value = it->second.bool_param();
  parameters->erase(it);
  return value;
}

json ParameterToJson(const inference::InferParameter& parameter) {
  switch (parameter.parameter_choice_case()) {
    case inference::InferParameter::kBoolParam:
      return parameter.bool_param();
    case inference::InferParameter::kInt64Param:
      return parameter.int64_param();
    case inference::InferParameter::kStringParam:
      return parameter.string_param();
    case inference::InferParameter::kDoubleParam:
      return parameter.double_param();
    case inference::InferParameter::kUint64Param:
      return parameter.uint64_param();
    case inference::InferParameter::PARAMETER_CHOICE_NOT_SET:
      break;
  }
  return nullptr;
}

json ParametersToJson(const ParameterMap& parameters) {
  json object = json::object();
  for (const auto& [name, parameter] : parameters) object[name] = ParameterToJson(parameter);
  return object;
}

// ---- shapes and element counts ---------------------------------------------

// The element count of `shape`; nullopt if it overflows int64.
std::optional<int64_t> ElementCount(const google::protobuf::RepeatedField<int64_t>& shape) {
  int64_t count = 1;
  for (int64_t dimension : shape) {
    if (dimension < 0 || __builtin_mul_overflow(count, dimension, &count)) return std::nullopt;
  }
  return count;
}

absl::Status ParseShape(const json& input, const std::string& where,
                        google::protobuf::RepeatedField<int64_t>* shape) {
  auto it = input.find("shape");
  const std::string here = absl::StrCat(where, "shape");
  if (it == input.end()) return Invalid(here, "is required");
  if (!it->is_array()) return Invalid(here, "must be an array of integers");
  if (it->size() > kMaxRank) {
    return Invalid(here, absl::StrCat("has ", it->size(), " dimensions; at most ", kMaxRank));
  }
  for (size_t i = 0; i < it->size(); ++i) {
    const json& dimension = (*it)[i];
    const std::string at = absl::StrCat(here, "[", i, "]");
    if (dimension.is_number_unsigned()) {
      const uint64_t value = dimension.get<uint64_t>();
      if (value > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return Invalid(at, absl::StrCat(value, " is too large"));
      }
      shape->Add(static_cast<int64_t>(value));
    } else if (dimension.is_number_integer()) {
      return Invalid(at, absl::StrCat(dimension.get<int64_t>(), " is negative"));
    } else {
      return Invalid(at, absl::StrCat("must be a non-negative integer, not ",
                                      dimension.dump(-1, ' ', false,
                                                     json::error_handler_t::replace)));
    }
  }
  if (!ElementCount(*shape).has_value()) {
    return Invalid(here, "has more elements than a tensor can hold");
  }
  return absl::OkStatus();
}

// ---- JSON tensor data --------------------------------------------------------

// Collects the scalar elements of `data` in row-major order, flat or nested
// exactly as `shape`.
absl::Status CollectNested(const json& node, const google::protobuf::RepeatedField<int64_t>& shape,
                           int depth, const std::string& where, std::vector<const json*>* out) {
  if (!node.is_array() || static_cast<int64_t>(node.size()) != shape[depth]) {
    return Invalid(where, absl::StrCat("nested data must have ", shape[depth],
                                       " elements at depth ", depth, " as the shape says"));
  }
  const bool last = depth + 1 == shape.size();
  for (size_t i = 0; i < node.size(); ++i) {
    const json& element = node[i];
    if (last) {
      if (element.is_array() || element.is_object()) {
        return Invalid(absl::StrCat(where, "[", i, "]"),
                       "nested data are deeper than the shape");
      }
      out->push_back(&element);
    } else {
      RETURN_IF_ERROR(CollectNested(element, shape, depth + 1, absl::StrCat(where, "[", i, "]"),
                                    out));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<const json*>> CollectElements(
    const json& data, const google::protobuf::RepeatedField<int64_t>& shape,
    const std::string& where) {
  if (!data.is_array()) return Invalid(where, "must be an array");
  const int64_t count = *ElementCount(shape);
  std::vector<const json*> elements;
  const bool nested = !data.empty() && data[0].is_array();
  if (!nested) {
    if (static_cast<int64_t>(data.size()) != count) {
      return Invalid(where, absl::StrCat("has ", data.size(), " values; the shape holds ",
                                         count));
    }
    elements.reserve(data.size());
    for (size_t i = 0; i < data.size(); ++i) {
      if (data[i].is_array() || data[i].is_object()) {
        return Invalid(absl::StrCat(where, "[", i, "]"),
                       "flat data must hold only values (or nest every row)");
      }
      elements.push_back(&data[i]);
    }
    return elements;
  }
  if (shape.empty()) return Invalid(where, "nested data for a scalar (shape [])");
  elements.reserve(static_cast<size_t>(count));
  RETURN_IF_ERROR(CollectNested(data, shape, 0, where, &elements));
  return elements;
}

template <typename T>
absl::StatusOr<T> IntegerFromJson(const json& value, const std::string& where,
                                  const std::string& datatype) {
  if (value.is_number_unsigned()) {
    const uint64_t u = value.get<uint64_t>();
    if (u <= static_cast<uint64_t>(std::numeric_limits<T>::max())) return static_cast<T>(u);
  } else if (value.is_number_integer()) {
    const int64_t i = value.get<int64_t>();
    if (std::numeric_limits<T>::is_signed &&
        i >= static_cast<int64_t>(std::numeric_limits<T>::min()) &&
        i <= static_cast<int64_t>(std::numeric_limits<T>::max())) {
      return static_cast<T>(i);
    }
  } else {
    return Invalid(where, absl::StrCat(datatype, " data must be integers, not ",
                                       value.type_name()));
  }
  return Invalid(where, absl::StrCat(value.dump(), " is out of ", datatype, "'s range"));
}

// Fills `contents` with the elements converted to `datatype`.
absl::Status ContentsFromJson(const std::vector<const json*>& elements,
                              const std::string& datatype, const std::string& where,
                              inference::InferTensorContents* contents) {
  auto at = [&](size_t i) { return absl::StrCat(where, "[", i, "]"); };
  const size_t n = elements.size();
  if (datatype == "FP32" || datatype == "FP64") {
    const bool fp32 = datatype == "FP32";
    if (fp32) {
      contents->mutable_fp32_contents()->Reserve(static_cast<int>(n));
    } else {
      contents->mutable_fp64_contents()->Reserve(static_cast<int>(n));
    }
    for (size_t i = 0; i < n; ++i) {
      const json& value = *elements[i];
      if (!value.is_number()) {
        return Invalid(at(i), absl::StrCat(datatype, " data must be numbers, not ",
                                           value.type_name()));
      }
      const double d = value.get<double>();
      if (fp32) {
        // Converting a double beyond float's range is undefined behaviour.
        if (!(std::fabs(d) <= FLT_MAX)) {
          return Invalid(at(i), absl::StrCat(value.dump(), " is out of FP32's range"));
        }
        contents->add_fp32_contents(static_cast<float>(d));
      } else {
        contents->add_fp64_contents(d);
      }
    }
    return absl::OkStatus();
  }
  for (size_t i = 0; i < n; ++i) {
    const json& value = *elements[i];
    if (datatype == "BOOL") {
      if (!value.is_boolean()) {
        return Invalid(at(i), absl::StrCat("BOOL data must be booleans, not ", value.type_name()));
      }
      contents->add_bool_contents(value.get<bool>());
    } else if (datatype == "INT8") {
      ASSIGN_OR_RETURN(int8_t v, IntegerFromJson<int8_t>(value, at(i), datatype));
      contents->add_int_contents(v);
    } else if (datatype == "INT16") {
      ASSIGN_OR_RETURN(int16_t v, IntegerFromJson<int16_t>(value, at(i), datatype));
      contents->add_int_contents(v);
    } else if (datatype == "INT32") {
      ASSIGN_OR_RETURN(int32_t v, IntegerFromJson<int32_t>(value, at(i), datatype));
      contents->add_int_contents(v);
    } else if (datatype == "INT64") {
      ASSIGN_OR_RETURN(int64_t v, IntegerFromJson<int64_t>(value, at(i), datatype));
      contents->add_int64_contents(v);
    } else if (datatype == "UINT8") {
      ASSIGN_OR_RETURN(uint8_t v, IntegerFromJson<uint8_t>(value, at(i), datatype));
      contents->add_uint_contents(v);
    } else if (datatype == "UINT16") {
      ASSIGN_OR_RETURN(uint16_t v, IntegerFromJson<uint16_t>(value, at(i), datatype));
      contents->add_uint_contents(v);
    } else if (datatype == "UINT32") {
      ASSIGN_OR_RETURN(uint32_t v, IntegerFromJson<uint32_t>(value, at(i), datatype));
      contents->add_uint_contents(v);
    } else if (datatype == "UINT64") {
      ASSIGN_OR_RETURN(uint64_t v, IntegerFromJson<uint64_t>(value, at(i), datatype));
      contents->add_uint64_contents(v);
    } else if (datatype == "BYTES") {
      if (!value.is_string()) {
        return Invalid(at(i), absl::StrCat("BYTES data must be strings, not ", value.type_name()));
      }
      contents->add_bytes_contents(value.get<std::string>());
    } else {
      return Invalid(where, absl::StrCat(datatype, " data cannot be given as JSON; send them as "
                                                   "binary data"));
    }
  }
  return absl::OkStatus();
}

// ---- raw (binary) tensor data ------------------------------------------------

template <typename To, typename Repeated>
void AppendRaw(const Repeated& values, std::string* out) {
  const size_t start = out->size();
  out->resize(start + sizeof(To) * static_cast<size_t>(values.size()));
  char* p = out->data() + start;
  for (auto value : values) {
    const To narrowed = static_cast<To>(value);
    std::memcpy(p, &narrowed, sizeof(To));
    p += sizeof(To);
  }
}

// The typed contents of a `datatype` tensor as little-endian bytes (BYTES:
// each element's 4-byte length, then its bytes).
absl::StatusOr<std::string> RawFromContents(const std::string& datatype,
                                            const inference::InferTensorContents& c) {
  std::string raw;
  if (datatype == "FP32") {
    raw.assign(reinterpret_cast<const char*>(c.fp32_contents().data()),
               sizeof(float) * static_cast<size_t>(c.fp32_contents_size()));
  } else if (datatype == "FP64") {
    raw.assign(reinterpret_cast<const char*>(c.fp64_contents().data()),
               sizeof(double) * static_cast<size_t>(c.fp64_contents_size()));
  } else if (datatype == "BOOL") {
    AppendRaw<uint8_t>(c.bool_contents(), &raw);
  } else if (datatype == "INT8") {
    AppendRaw<int8_t>(c.int_contents(), &raw);
  } else if (datatype == "INT16") {
    AppendRaw<int16_t>(c.int_contents(), &raw);
  } else if (datatype == "INT32") {
    AppendRaw<int32_t>(c.int_contents(), &raw);
  } else if (datatype == "INT64") {
    AppendRaw<int64_t>(c.int64_contents(), &raw);
  } else if (datatype == "UINT8") {
    AppendRaw<uint8_t>(c.uint_contents(), &raw);
  } else if (datatype == "UINT16") {
    AppendRaw<uint16_t>(c.uint_contents(), &raw);
  } else if (datatype == "UINT32") {
    AppendRaw<uint32_t>(c.uint_contents(), &raw);
  } else if (datatype == "UINT64") {
    AppendRaw<uint64_t>(c.uint64_contents(), &raw);
  } else if (datatype == "BYTES") {
    for (const std::string& element : c.bytes_contents()) {
      const uint32_t length = static_cast<uint32_t>(element.size());
      raw.append(reinterpret_cast<const char*>(&length), sizeof(length));
      raw.append(element);
    }
  } else {
    return absl::InternalError(absl::StrCat("no typed contents for datatype ", datatype));
  }
  return raw;
}

// The element count of typed contents of `datatype`.
int64_t TypedCount(const std::string& datatype, const inference::InferTensorContents& c) {
  if (datatype == "FP32") return c.fp32_contents_size();
  if (datatype == "FP64") return c.fp64_contents_size();
  if (datatype == "BOOL") return c.bool_contents_size();
  if (datatype == "INT8" || datatype == "INT16" || datatype == "INT32") {
    return c.int_contents_size();
  }
  if (datatype == "INT64") return c.int64_contents_size();
  if (datatype == "UINT8" || datatype == "UINT16" || datatype == "UINT32") {
    return c.uint_contents_size();
  }
  if (datatype == "UINT64") return c.uint64_contents_size();
  if (datatype == "BYTES") return c.bytes_contents_size();
  return -1;
}

template <typename Repeated>
json JsonArray(const Repeated& values) {
  json array = json::array();
  array.get_ref<json::array_t&>().reserve(static_cast<size_t>(values.size()));
  for (auto value : values) array.push_back(value);
  return array;
}

// The typed contents as a flat JSON array (FP32 values widened to double).
json JsonFromContents(const std::string& datatype, const inference::InferTensorContents& c) {
  if (datatype == "FP32") {
    json array = json::array();
    array.get_ref<json::array_t&>().reserve(static_cast<size_t>(c.fp32_contents_size()));
    for (float value : c.fp32_contents()) array.push_back(static_cast<double>(value));
    return array;
  }
  if (datatype == "FP64") return JsonArray(c.fp64_contents());
  if (datatype == "BOOL") return JsonArray(c.bool_contents());
  if (datatype == "INT8" || datatype == "INT16" || datatype == "INT32") {
    return JsonArray(c.int_contents());
  }
  if (datatype == "INT64") return JsonArray(c.int64_contents());
  if (datatype == "UINT8" || datatype == "UINT16" || datatype == "UINT32") {
    return JsonArray(c.uint_contents());
  }
  if (datatype == "UINT64") return JsonArray(c.uint64_contents());
  json array = json::array();
  for (const std::string& element : c.bytes_contents()) array.push_back(element);
  return array;
}

template <typename T>
json JsonFromRawAs(absl::string_view raw) {
  json array = json::array();
  const size_t n = raw.size() / sizeof(T);
  array.get_ref<json::array_t&>().reserve(n);
  for (size_t i = 0; i < n; ++i) {
    T value;
    std::memcpy(&value, raw.data() + i * sizeof(T), sizeof(T));
    if constexpr (std::is_same_v<T, float>) {
      array.push_back(static_cast<double>(value));
    } else if constexpr (std::is_same_v<T, uint8_t>) {
      array.push_back(static_cast<unsigned>(value));
    } else {
      array.push_back(value);
    }
  }
  return array;
}

// Raw bytes of `count` elements of `datatype` as a flat JSON array.
absl::StatusOr<json> JsonFromRaw(const std::string& datatype, absl::string_view raw,
                                 int64_t count, const std::string& where) {
  const std::optional<size_t> size = ElementSize(datatype);
  if (!size.has_value() || datatype == "FP16" || datatype == "BF16") {
    return absl::InternalError(absl::StrCat(where, ": cannot write ", datatype, " as JSON"));
  }
  if (*size == 0) {  // BYTES
    json array = json::array();
    size_t offset = 0;
    while (offset < raw.size()) {
      uint32_t length = 0;
      if (raw.size() - offset < sizeof(length)) break;
      std::memcpy(&length, raw.data() + offset, sizeof(length));
      offset += sizeof(length);
      if (raw.size() - offset < length) break;
      array.push_back(std::string(raw.substr(offset, length)));
      offset += length;
    }
    if (offset != raw.size() || static_cast<int64_t>(array.size()) != count) {
      return absl::InternalError(absl::StrCat(where, ": malformed BYTES contents"));
    }
    return array;
  }
  if (static_cast<int64_t>(raw.size()) != count * static_cast<int64_t>(*size)) {
    return absl::InternalError(absl::StrCat(where, ": ", raw.size(), " bytes of raw contents for ",
                                            count, " ", datatype, " values"));
  }
  if (datatype == "FP32") return JsonFromRawAs<float>(raw);
  if (datatype == "FP64") return JsonFromRawAs<double>(raw);
  if (datatype == "INT8") return JsonFromRawAs<int8_t>(raw);
  if (datatype == "INT16") return JsonFromRawAs<int16_t>(raw);
  if (datatype == "INT32") return JsonFromRawAs<int32_t>(raw);
  if (datatype == "INT64") return JsonFromRawAs<int64_t>(raw);
  if (datatype == "UINT8") return JsonFromRawAs<uint8_t>(raw);
  if (datatype == "UINT16") return JsonFromRawAs<uint16_t>(raw);
  if (datatype == "UINT32") return JsonFromRawAs<uint32_t>(raw);
  if (datatype == "UINT64") return JsonFromRawAs<uint64_t>(raw);
  // BOOL
  json array = json::array();
  for (char byte : raw) array.push_back(byte != 0);
  return array;
}

// ---- request -----------------------------------------------------------------

absl::StatusOr<std::string> OptionalString(const json& object, const char* key,
                                           const std::string& where) {
  auto it = object.find(key);
  if (it == object.end()) return std::string();
  if (!it->is_string()) return Invalid(absl::StrCat(where, key), "must be a string");
  return it->get<std::string>();
}

absl::StatusOr<std::string> RequiredString(const json& object, const char* key,
                                           const std::string& where) {
  if (!object.contains(key)) return Invalid(absl::StrCat(where, key), "is required");
  return OptionalString(object, key, where);
}

// One input; its binary size (or -1 when its data are JSON) to *binary_size.
absl::Status ParseInput(const json& input, const std::string& where,
                        inference::ModelInferRequest::InferInputTensor* tensor,
                        int64_t* binary_size) {
  if (!input.is_object()) return Invalid(where, "must be an object");
  const std::string prefix = absl::StrCat(where, ".");
  ASSIGN_OR_RETURN(*tensor->mutable_name(), RequiredString(input, "name", prefix));
  ASSIGN_OR_RETURN(*tensor->mutable_datatype(), RequiredString(input, "datatype", prefix));
  const std::optional<size_t> element_size = ElementSize(tensor->datatype());
  if (!element_size.has_value()) {
    return Invalid(absl::StrCat(prefix, "datatype"),
                   absl::StrCat("unknown datatype \"", tensor->datatype(), "\""));
  }
  RETURN_IF_ERROR(ParseShape(input, prefix, tensor->mutable_shape()));
  RETURN_IF_ERROR(ParseParameters(input, prefix, tensor->mutable_parameters()));

  *binary_size = -1;
  auto size_it = tensor->mutable_parameters()->find(kBinaryDataSize);
  if (size_it != tensor->mutable_parameters()->end()) {
    const std::string at = absl::StrCat(prefix, "parameters.", kBinaryDataSize);
    if (size_it->second.parameter_choice_case() != inference::InferParameter::kInt64Param ||
        size_it->second.int64_param() < 0) {
      return Invalid(at, "must be a non-negative integer");
    }
    *binary_size = size_it->second.int64_param();
    tensor->mutable_parameters()->erase(size_it);
    if (input.contains("data")) return Invalid(where, "has both binary data and \"data\"");
    return absl::OkStatus();
  }
  auto data = input.find("data");
  if (data == input.end()) return Invalid(absl::StrCat(prefix, "data"), "is required");
  ASSIGN_OR_RETURN(std::vector<const json*> elements,
                   CollectElements(*data, tensor->shape(), absl::StrCat(prefix, "data")));
  return ContentsFromJson(elements, tensor->datatype(), absl::StrCat(prefix, "data"),
                          tensor->mutable_contents());
}

// The JSON part's length from the header: a decimal in [1, body_size].
absl::StatusOr<size_t> HeaderLength(absl::string_view header, size_t body_size) {
  uint64_t length = 0;
  if (!absl::SimpleAtoi(header, &length) || length > body_size) {
    return absl::InvalidArgumentError(
        absl::StrCat(kInferenceHeaderContentLength, " \"", header,
                     "\" must be a byte count within the body's ", body_size, " bytes"));
  }
  if (length == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(kInferenceHeaderContentLength,
                     " 0 (a raw binary request without a JSON header) is not supported; send "
                     "the JSON inference header first"));
  }
  return static_cast<size_t>(length);
}

}  // namespace

bool RestOutputFormat::IsBinary(const std::string& output_name) const {
  auto it = binary_by_name.find(output_name);
  return it != binary_by_name.end() ? it->second : binary_by_default;
}

std::string DumpJson(const json& value) {
  return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

absl::StatusOr<RestInferRequest> ParseInferRequest(absl::string_view body,
                                                   std::optional<absl::string_view> header_length,
                                                   const std::string& model_name,
                                                   const std::string& model_version) {
  absl::string_view json_text = body;
  absl::string_view binary;
  if (header_length.has_value()) {
    ASSIGN_OR_RETURN(size_t length, HeaderLength(*header_length, body.size()));
    json_text = body.substr(0, length);
    binary = body.substr(length);
  }
  json root;
  try {
    root = json::parse(json_text.begin(), json_text.end());
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("the request is not valid JSON: ", e.what()));
  }
  if (!root.is_object()) return absl::InvalidArgumentError("the request must be a JSON object");

  RestInferRequest parsed;
  inference::ModelInferRequest& request = parsed.request;
  request.set_model_name(model_name);
  request.set_model_version(model_version);
  ASSIGN_OR_RETURN(*request.mutable_id(), OptionalString(root, "id", ""));
  RETURN_IF_ERROR(ParseParameters(root, "", request.mutable_parameters()));
  ASSIGN_OR_RETURN(parsed.output_format.binary_by_default,
                   TakeBoolParameter(request.mutable_parameters(), kBinaryDataOutput, ""));

  auto inputs = root.find("inputs");
  if (inputs == root.end()) return absl::InvalidArgumentError("inputs: is required");
  if (!inputs->is_array()) return absl::InvalidArgumentError("inputs: must be an array");
  std::vector<int64_t> binary_sizes;
  bool any_binary = false;
  for (size_t i = 0; i < inputs->size(); ++i) {
    int64_t binary_size = -1;
    RETURN_IF_ERROR(ParseInput((*inputs)[i], absl::StrCat("inputs[", i, "]"),
                               request.add_inputs(), &binary_size));
    binary_sizes.push_back(binary_size);
    any_binary = any_binary || binary_size >= 0;
  }
  if (any_binary && !header_length.has_value()) {
    return absl::InvalidArgumentError(
        absl::StrCat("an input has binary_data_size but the request has no ",
                     kInferenceHeaderContentLength, " header"));
  }
  if (any_binary) {
    size_t offset = 0;
    for (int i = 0; i < request.inputs_size(); ++i) {
      auto* input = request.mutable_inputs(i);
      if (binary_sizes[i] < 0) {
        // All inputs raw or none: this one's JSON values become raw bytes too.
        ASSIGN_OR_RETURN(std::string raw, RawFromContents(input->datatype(), input->contents()));
        input->clear_contents();
        request.add_raw_input_contents(std::move(raw));
        continue;
      }
      const uint64_t size = static_cast<uint64_t>(binary_sizes[i]);
      if (size > binary.size() - offset) {
        return absl::InvalidArgumentError(absl::StrCat(
            "inputs[", i, "].parameters.binary_data_size: ", size, " bytes, but only ",
            binary.size() - offset, " bytes of binary data are left"));
      }
      request.add_raw_input_contents(std::string(binary.substr(offset, size)));
      offset += size;
    }
    if (offset != binary.size()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the binary data are ", binary.size(), " bytes, but the inputs' binary_data_size add "
          "up to ", offset));
    }
  } else if (!binary.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        binary.size(), " bytes follow the JSON header, but no input has binary_data_size"));
  }

  if (auto outputs = root.find("outputs"); outputs != root.end()) {
    if (!outputs->is_array()) return absl::InvalidArgumentError("outputs: must be an array");
    for (size_t i = 0; i < outputs->size(); ++i) {
      const json& output = (*outputs)[i];
      const std::string where = absl::StrCat("outputs[", i, "]");
      if (!output.is_object()) return Invalid(where, "must be an object");
      auto* tensor = request.add_outputs();
      const std::string prefix = absl::StrCat(where, ".");
      ASSIGN_OR_RETURN(*tensor->mutable_name(), RequiredString(output, "name", prefix));
      RETURN_IF_ERROR(ParseParameters(output, prefix, tensor->mutable_parameters()));
      if (tensor->parameters().contains(kBinaryData)) {
        ASSIGN_OR_RETURN(bool binary_output,
                         TakeBoolParameter(tensor->mutable_parameters(), kBinaryData, prefix));
        parsed.output_format.binary_by_name[tensor->name()] = binary_output;
      }
    }
  }
  return parsed;
}

absl::StatusOr<RestBody> EncodeInferResponse(const inference::ModelInferResponse& response,
                                             const RestOutputFormat& format) {
  const bool raw = response.raw_output_contents_size() > 0;
  if (raw && response.raw_output_contents_size() != response.outputs_size()) {
    return absl::InternalError(absl::StrCat("the response has ", response.outputs_size(),
                                            " outputs but ", response.raw_output_contents_size(),
                                            " raw contents"));
  }
  json root = json::object();
  root["model_name"] = response.model_name();
  if (!response.model_version().empty()) root["model_version"] = response.model_version();
  if (!response.id().empty()) root["id"] = response.id();
  if (!response.parameters().empty()) root["parameters"] = ParametersToJson(response.parameters());
  json outputs = json::array();
  // The binary sections, in output order: views of raw contents, or bytes
  // encoded here from typed contents.
  std::vector<std::string> encoded;
  std::vector<absl::string_view> sections;
  encoded.reserve(static_cast<size_t>(response.outputs_size()));
  for (int i = 0; i < response.outputs_size(); ++i) {
    const auto& output = response.outputs(i);
    const std::string where = absl::StrCat("outputs[", i, "] (", output.name(), ")");
    const std::optional<int64_t> count = ElementCount(output.shape());
    if (!count.has_value()) return absl::InternalError(absl::StrCat(where, ": bad shape"));
    json tensor = json::object();
    tensor["name"] = output.name();
    tensor["datatype"] = output.datatype();
    tensor["shape"] = JsonArray(output.shape());
    json parameters = ParametersToJson(output.parameters());
    if (format.IsBinary(output.name())) {
      absl::string_view bytes;
      if (raw) {
        bytes = response.raw_output_contents(i);
      } else {
        if (TypedCount(output.datatype(), output.contents()) != *count) {
          return absl::InternalError(absl::StrCat(where, ": contents disagree with the shape"));
        }
        ASSIGN_OR_RETURN(std::string bytes_here,
                         RawFromContents(output.datatype(), output.contents()));
        encoded.push_back(std::move(bytes_here));
        bytes = encoded.back();
      }
      parameters[kBinaryDataSize] = bytes.size();
      sections.push_back(bytes);
      tensor["parameters"] = std::move(parameters);
    } else {
      if (!parameters.empty()) tensor["parameters"] = std::move(parameters);
      if (raw) {
        ASSIGN_OR_RETURN(tensor["data"], JsonFromRaw(output.datatype(),
                                                     response.raw_output_contents(i), *count,
                                                     where));
      } else {
        if (TypedCount(output.datatype(), output.contents()) != *count) {
          return absl::InternalError(absl::StrCat(where, ": contents disagree with the shape"));
        }
        tensor["data"] = JsonFromContents(output.datatype(), output.contents());
      }
    }
    outputs.push_back(std::move(tensor));
  }
  root["outputs"] = std::move(outputs);
  RestBody out;
  out.body = DumpJson(root);
  out.json_size = out.body.size();
  size_t total = out.body.size();
  for (absl::string_view section : sections) total += section.size();
  out.body.reserve(total);
  for (absl::string_view section : sections) out.body.append(section.data(), section.size());
  return out;
}

json ServerMetadataToJson(const inference::ServerMetadataResponse& metadata) {
  json extensions = json::array();
  for (const std::string& extension : metadata.extensions()) extensions.push_back(extension);
  return json{{"name", metadata.name()},
              {"version", metadata.version()},
              {"extensions", std::move(extensions)}};
}

json ModelMetadataToJson(const inference::ModelMetadataResponse& metadata) {
  auto tensors = [](const auto& list) {
    json array = json::array();
    for (const auto& tensor : list) {
      array.push_back(json{{"name", tensor.name()},
                           {"datatype", tensor.datatype()},
                           {"shape", JsonArray(tensor.shape())}});
    }
    return array;
  };
  json versions = json::array();
  for (const std::string& version : metadata.versions()) versions.push_back(version);
  json root = json{{"name", metadata.name()},
                   {"versions", std::move(versions)},
                   {"platform", metadata.platform()},
                   {"inputs", tensors(metadata.inputs())},
                   {"outputs", tensors(metadata.outputs())}};
  if (!metadata.properties().empty()) {
    json properties = json::object();
    for (const auto& [key, value] : metadata.properties()) properties[key] = value;
    root["properties"] = std::move(properties);
  }
  return root;
}

}  // namespace bnserve
