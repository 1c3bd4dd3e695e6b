// The REST <-> proto codec of the Open Inference Protocol: JSON data flat
// and nested, every datatype's JSON form, parameters, every malformed
// request's InvalidArgument, the binary tensor data extension (header split,
// binary inputs into raw_input_contents, binary outputs), and FP32 outputs
// that read back as the same float bit for bit.
#include "server/v2_rest_codec.h"

#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace bnserve {
namespace {

using ::bnserve::testing::StatusIs;
using ::nlohmann::json;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

absl::StatusOr<RestInferRequest> Parse(const std::string& body) {
  return ParseInferRequest(body, std::nullopt, "digits", "2");
}

// The status's message when it is InvalidArgument ("<ok>" or the code
// otherwise, so that a wrong code fails the caller's expectation too).
std::string InvalidMessage(const std::string& body) {
  absl::StatusOr<RestInferRequest> parsed = Parse(body);
  if (parsed.ok()) return "<ok>";
  if (parsed.status().code() != absl::StatusCode::kInvalidArgument) {
    return parsed.status().ToString();
  }
  return std::string(parsed.status().message());
}

// A one-input request whose input is `input` (a JSON object's members).
std::string OneInput(const std::string& input) {
  return absl::StrCat(R"({"inputs":[{"name":"input",)", input, "}]}");
}

template <typename T>
std::string Bytes(const std::vector<T>& values) {
  return std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T));
}

TEST(ParseInferRequestTest, FlatFp32BecomesTheProtocolsMessage) {
  ASSERT_OK_AND_ASSIGN(RestInferRequest parsed, Parse(R"({
      "id": "42", "parameters": {"bn_mode": "inference"},
      "inputs": [{"name": "input", "shape": [2, 3], "datatype": "FP32",
                  "data": [1, 2.5, -3, 0.1, 1e-3, 7]}],
      "outputs": [{"name": "probabilities"}]})"));
  const inference::ModelInferRequest& request = parsed.request;
  EXPECT_EQ(request.model_name(), "digits");
  EXPECT_EQ(request.model_version(), "2");
  EXPECT_EQ(request.id(), "42");
  EXPECT_EQ(request.parameters().at("bn_mode").string_param(), "inference");
  ASSERT_EQ(request.inputs_size(), 1);
  const auto& input = request.inputs(0);
  EXPECT_EQ(input.name(), "input");
  EXPECT_EQ(input.datatype(), "FP32");
  EXPECT_THAT(input.shape(), ElementsAre(2, 3));
  EXPECT_THAT(input.contents().fp32_contents(),
              ElementsAre(1.0f, 2.5f, -3.0f, 0.1f, 1e-3f, 7.0f));
  EXPECT_EQ(request.raw_input_contents_size(), 0);
  ASSERT_EQ(request.outputs_size(), 1);
  EXPECT_EQ(request.outputs(0).name(), "probabilities");
  EXPECT_FALSE(parsed.output_format.IsBinary("probabilities"));
}

TEST(ParseInferRequestTest, NestedDataEqualFlatData) {
  ASSERT_OK_AND_ASSIGN(RestInferRequest flat,
                       Parse(OneInput(R"("shape":[2,2,2],"datatype":"FP32",
                                         "data":[1,2,3,4,5,6,7,8])")));
  ASSERT_OK_AND_ASSIGN(RestInferRequest nested,
                       Parse(OneInput(R"("shape":[2,2,2],"datatype":"FP32",
                                         "data":[[[1,2],[3,4]],[[5,6],[7,8]]])")));
  EXPECT_EQ(flat.request.SerializeAsString(), nested.request.SerializeAsString());
  EXPECT_THAT(nested.request.inputs(0).contents().fp32_contents(),
              ElementsAre(1, 2, 3, 4, 5, 6, 7, 8));
}

TEST(ParseInferRequestTest, NestingMustFollowTheShapeExactly) {
  // A row too short, a row too long (same total), too few rows, too deep,
  // and a mix of rows and values.
  EXPECT_THAT(InvalidMessage(OneInput(R"("shape":[2,3],"datatype":"FP32",
                                         "data":[[1,2],[3,4,5,6]])")),
              AllOf(HasSubstr("inputs[0].data[0]"), HasSubstr("3 elements at depth 1")));
  EXPECT_THAT(InvalidMessage(OneInput(R"("shape":[2,3],"datatype":"FP32",
                                         "data":[[1,2,3]])")),
              HasSubstr("2 elements at depth 0"));
  EXPECT_THAT(InvalidMessage(OneInput(R"("shape":[2,1],"datatype":"FP32",
                                         "data":[[[1]],[[2]]])")),
              HasSubstr("deeper than the shape"));
  EXPECT_THAT(InvalidMessage(OneInput(R"("shape":[2,2],"datatype":"FP32",
                                         "data":[1,2,[3],4])")),
              HasSubstr("flat data must hold only values"));
  EXPECT_THAT(InvalidMessage(OneInput(R"("shape":[],"datatype":"FP32","data":[[1]])")),
              HasSubstr("scalar"));
  EXPECT_THAT(InvalidMessage(OneInput(R"("shape":[2],"datatype":"FP32","data":7)")),
              HasSubstr("inputs[0].data: must be an array"));
}

TEST(ParseInferRequestTest, ShapeAndDataCountMustAgree) {
  EXPECT_THAT(InvalidMessage(OneInput(R"("shape":[2,2],"datatype":"FP32","data":[1,2,3])")),
              AllOf(HasSubstr("inputs[0].data"), HasSubstr("has 3 values; the shape holds 4")));
  EXPECT_THAT(InvalidMessage(OneInput(R"("shape":[0,784],"datatype":"FP32","data":[1])")),
              HasSubstr("the shape holds 0"));
  ASSERT_OK_AND_ASSIGN(RestInferRequest scalar,
                       Parse(OneInput(R"("shape":[],"datatype":"FP32","data":[5])")));
  EXPECT_THAT(scalar.request.inputs(0).contents().fp32_contents(), ElementsAre(5.0f));
}

TEST(ParseInferRequestTest, RefusesNegativeHugeAndNonIntegerShapes) {
  EXPECT_THAT(InvalidMessage(OneInput(R"("shape":[-1,784],"datatype":"FP32","data":[])")),
              AllOf(HasSubstr("inputs[0].shape[0]"), HasSubstr("-1 is negative")));
  EXPECT_THAT(
      InvalidMessage(OneInput(R"("shape":[1,18446744073709551615],"datatype":"FP32","data":[])")),
      AllOf(HasSubstr("inputs[0].shape[1]"), HasSubstr("too large")));
  // Each dimension fits int64; their product does not.
  EXPECT_THAT(InvalidMessage(OneInput(
                  R"("shape":[4611686018427387904,4],"datatype":"FP32","data":[])")),
              HasSubstr("more elements than a tensor can hold"));
  EXPECT_THAT(InvalidMessage(OneInput(
                  R"("shape":[3037000500,3037000500],"datatype":"FP32","data":[])")),
              HasSubstr("more elements than a tensor can hold"));
  EXPECT_THAT(InvalidMessage(OneInput(R"("shape":[2.5],"datatype":"FP32","data":[])")),
              HasSubstr("must be a non-negative integer, not 2.5"));
  EXPECT_THAT(InvalidMessage(OneInput(R"("shape":["2"],"datatype":"FP32","data":[])")),
              HasSubstr("not \"2\""));
  EXPECT_THAT(InvalidMessage(OneInput(R"("shape":7,"datatype":"FP32","data":[])")),
              HasSubstr("inputs[0].shape: must be an array"));
  std::string deep = "[";
  for (int i = 0; i < 33; ++i) deep += i == 0 ? "1" : ",1";
  deep += "]";
  EXPECT_THAT(InvalidMessage(OneInput(absl::StrCat(R"("shape":)", deep,
                                                   R"(,"datatype":"FP32","data":[1])"))),
              HasSubstr("33 dimensions"));
}

TEST(ParseInferRequestTest, Fp64IsKeptAsDoublesAndFp32OutOfRangeIsRefused) {
  ASSERT_OK_AND_ASSIGN(RestInferRequest parsed,
                       Parse(OneInput(R"("shape":[3],"datatype":"FP64",
                                         "data":[0.1, 1e300, -2])")));
  EXPECT_THAT(parsed.request.inputs(0).contents().fp64_contents(), ElementsAre(0.1, 1e300, -2.0));
  EXPECT_EQ(parsed.request.inputs(0).contents().fp32_contents_size(), 0);
  EXPECT_THAT(InvalidMessage(OneInput(R"("shape":[1],"datatype":"FP32","data":[1e39])")),
              AllOf(HasSubstr("inputs[0].data[0]"), HasSubstr("out of FP32's range")));
  EXPECT_THAT(InvalidMessage(OneInput(R"("shape":[1],"datatype":"FP32","data":["1"])")),
              HasSubstr("FP32 data must be numbers, not string"));
  EXPECT_THAT(InvalidMessage(OneInput(R"("shape":[1],"datatype":"FP32","data":[true])")),
              HasSubstr("not boolean"));
  EXPECT_THAT(InvalidMessage(OneInput(R"("shape":[1],"datatype":"FP32","data":[null])")),
              HasSubstr("not null"));
}

TEST(ParseInferRequestTest, EveryOtherDatatypeHasItsContentsField) {
  auto contents = [](const std::string& datatype, const std::string& data, size_t n) {
    absl::StatusOr<RestInferRequest> parsed = Parse(OneInput(
        absl::StrCat(R"("shape":[)", n, R"(],"datatype":")", datatype, R"(","data":)", data)));
    EXPECT_OK(parsed.status()) << datatype;
    return parsed.ok() ? parsed->request.inputs(0).contents() : inference::InferTensorContents();
  };
  EXPECT_THAT(contents("BOOL", "[true,false]", 2).bool_contents(), ElementsAre(true, false));
  EXPECT_THAT(contents("INT8", "[-128,127]", 2).int_contents(), ElementsAre(-128, 127));
  EXPECT_THAT(contents("INT16", "[-32768,32767]", 2).int_contents(), ElementsAre(-32768, 32767));
  EXPECT_THAT(contents("INT32", "[-2147483648,2147483647]", 2).int_contents(),
              ElementsAre(std::numeric_limits<int32_t>::min(), 2147483647));
  EXPECT_THAT(contents("INT64", "[-9223372036854775808,9223372036854775807]", 2).int64_contents(),
              ElementsAre(std::numeric_limits<int64_t>::min(),
                          std::numeric_limits<int64_t>::max()));
  EXPECT_THAT(contents("UINT8", "[0,255]", 2).uint_contents(), ElementsAre(0u, 255u));
  EXPECT_THAT(contents("UINT16", "[65535]", 1).uint_contents(), ElementsAre(65535u));
  EXPECT_THAT(contents("UINT32", "[4294967295]", 1).uint_contents(), ElementsAre(4294967295u));
  EXPECT_THAT(contents("UINT64", "[18446744073709551615]", 1).uint64_contents(),
              ElementsAre(std::numeric_limits<uint64_t>::max()));
  EXPECT_THAT(contents("BYTES", R"(["ab",""])", 2).bytes_contents(), ElementsAre("ab", ""));

  EXPECT_THAT(InvalidMessage(OneInput(R"("shape":[1],"datatype":"INT8","data":[128])")),
              HasSubstr("128 is out of INT8's range"));
  EXPECT_THAT(InvalidMessage(OneInput(R"("shape":[1],"datatype":"UINT8","data":[-1])")),
              HasSubstr("-1 is out of UINT8's range"));
  EXPECT_THAT(InvalidMessage(OneInput(R"("shape":[1],"datatype":"INT32","data":[1.5])")),
              HasSubstr("INT32 data must be integers"));
  EXPECT_THAT(InvalidMessage(OneInput(R"("shape":[1],"datatype":"BOOL","data":[1])")),
              HasSubstr("BOOL data must be booleans"));
  EXPECT_THAT(InvalidMessage(OneInput(R"("shape":[1],"datatype":"BYTES","data":[1])")),
              HasSubstr("BYTES data must be strings"));
  EXPECT_THAT(InvalidMessage(OneInput(R"("shape":[1],"datatype":"FP16","data":[1])")),
              HasSubstr("FP16 data cannot be given as JSON"));
  EXPECT_THAT(InvalidMessage(OneInput(R"("shape":[1],"datatype":"FLOAT","data":[1])")),
              HasSubstr("unknown datatype \"FLOAT\""));
}

TEST(ParseInferRequestTest, ParametersMapToInferParameterTypes) {
  ASSERT_OK_AND_ASSIGN(RestInferRequest parsed, Parse(R"({
      "parameters": {"b": true, "i": -3, "u": 18446744073709551615, "big": 9223372036854775807,
                     "d": 0.25, "s": "x"},
      "inputs": [{"name": "input", "shape": [1], "datatype": "FP32", "data": [1],
                  "parameters": {"k": 1}}],
      "outputs": [{"name": "o", "parameters": {"classification": 2}}]})"));
  const auto& p = parsed.request.parameters();
  EXPECT_TRUE(p.at("b").bool_param());
  EXPECT_EQ(p.at("i").int64_param(), -3);
  EXPECT_EQ(p.at("u").uint64_param(), std::numeric_limits<uint64_t>::max());
  EXPECT_EQ(p.at("big").int64_param(), std::numeric_limits<int64_t>::max());
  EXPECT_EQ(p.at("d").double_param(), 0.25);
  EXPECT_EQ(p.at("s").string_param(), "x");
  EXPECT_EQ(parsed.request.inputs(0).parameters().at("k").int64_param(), 1);
  EXPECT_EQ(parsed.request.outputs(0).parameters().at("classification").int64_param(), 2);

  EXPECT_THAT(InvalidMessage(R"({"parameters":{"x":null},"inputs":[]})"),
              AllOf(HasSubstr("parameters.x"), HasSubstr("not null")));
  EXPECT_THAT(InvalidMessage(R"({"parameters":{"x":[1]},"inputs":[]})"), HasSubstr("not array"));
  EXPECT_THAT(InvalidMessage(R"({"parameters":{"x":{}},"inputs":[]})"), HasSubstr("not object"));
  EXPECT_THAT(InvalidMessage(R"({"parameters":[],"inputs":[]})"),
              HasSubstr("parameters: must be an object"));
}

TEST(ParseInferRequestTest, MalformedRequestsAreInvalidArgumentWithAMessage) {
  EXPECT_THAT(InvalidMessage(""), HasSubstr("not valid JSON"));
  EXPECT_THAT(InvalidMessage(R"({"inputs":[{"name":)"),
              AllOf(HasSubstr("not valid JSON"), HasSubstr("parse error")));
  EXPECT_THAT(InvalidMessage("{\"inputs\":[]} trailing"), HasSubstr("not valid JSON"));
  EXPECT_THAT(InvalidMessage(R"({"inputs":[1e400]})"), HasSubstr("not valid JSON"));
  EXPECT_THAT(InvalidMessage("[1,2]"), HasSubstr("must be a JSON object"));
  EXPECT_THAT(InvalidMessage("{}"), HasSubstr("inputs: is required"));
  EXPECT_THAT(InvalidMessage(R"({"inputs":{}})"), HasSubstr("inputs: must be an array"));
  EXPECT_THAT(InvalidMessage(R"({"inputs":[7]})"), HasSubstr("inputs[0]: must be an object"));
  EXPECT_THAT(InvalidMessage(R"({"id":7,"inputs":[]})"), HasSubstr("id: must be a string"));
  EXPECT_THAT(InvalidMessage(R"({"inputs":[{"shape":[1],"datatype":"FP32","data":[1]}]})"),
              HasSubstr("inputs[0].name: is required"));
  EXPECT_THAT(InvalidMessage(R"({"inputs":[{"name":1,"shape":[1],"datatype":"FP32","data":[1]}]})"),
              HasSubstr("inputs[0].name: must be a string"));
  EXPECT_THAT(InvalidMessage(OneInput(R"("shape":[1],"data":[1])")),
              HasSubstr("inputs[0].datatype: is required"));
  EXPECT_THAT(InvalidMessage(OneInput(R"("datatype":"FP32","data":[1])")),
              HasSubstr("inputs[0].shape: is required"));
  EXPECT_THAT(InvalidMessage(OneInput(R"("shape":[1],"datatype":"FP32")")),
              HasSubstr("inputs[0].data: is required"));
  EXPECT_THAT(InvalidMessage(R"({"inputs":[],"outputs":[{"parameters":{}}]})"),
              HasSubstr("outputs[0].name: is required"));
  EXPECT_THAT(InvalidMessage(R"({"inputs":[],"outputs":{}})"),
              HasSubstr("outputs: must be an array"));
  // Invalid UTF-8 is a parse error, not a crash.
  EXPECT_THAT(InvalidMessage("{\"id\":\"\xff\",\"inputs\":[]}"), HasSubstr("not valid JSON"));
  // Keys the document does not define are ignored.
  EXPECT_EQ(InvalidMessage(R"({"model_name":"other","inputs":[]})"), "<ok>");
}

TEST(ParseInferRequestTest, BinaryInputsFollowTheJsonHeaderInInputOrder) {
  const std::vector<float> a = {1.5f, -2.0f, 0.1f, 3.0f};
  const std::vector<int32_t> b = {7, -8};
  const std::string header = R"({"inputs":[
      {"name":"a","shape":[2,2],"datatype":"FP32","parameters":{"binary_data_size":16}},
      {"name":"b","shape":[2],"datatype":"INT32","parameters":{"binary_data_size":8,"k":"v"}}],
      "outputs":[{"name":"p","parameters":{"binary_data":true}},{"name":"q"}]})";
  const std::string body = header + Bytes(a) + Bytes(b);
  ASSERT_OK_AND_ASSIGN(RestInferRequest parsed,
                       ParseInferRequest(body, absl::StrCat(header.size()), "m", ""));
  const inference::ModelInferRequest& request = parsed.request;
  ASSERT_EQ(request.raw_input_contents_size(), 2);
  EXPECT_EQ(request.raw_input_contents(0), Bytes(a));
  EXPECT_EQ(request.raw_input_contents(1), Bytes(b));
  EXPECT_EQ(request.inputs(0).contents().fp32_contents_size(), 0);
  // The extension's parameters are consumed; the others pass on.
  EXPECT_FALSE(request.inputs(0).parameters().contains("binary_data_size"));
  EXPECT_FALSE(request.inputs(1).parameters().contains("binary_data_size"));
  EXPECT_EQ(request.inputs(1).parameters().at("k").string_param(), "v");
  EXPECT_FALSE(request.outputs(0).parameters().contains("binary_data"));
  EXPECT_TRUE(parsed.output_format.IsBinary("p"));
  EXPECT_FALSE(parsed.output_format.IsBinary("q"));
}

TEST(ParseInferRequestTest, AJsonInputNextToABinaryOneBecomesRawToo) {
  const std::vector<float> a = {1.0f, 2.0f};
  const std::string header = R"({"inputs":[
      {"name":"j","shape":[3],"datatype":"INT16","data":[1,-2,300]},
      {"name":"a","shape":[2],"datatype":"FP32","parameters":{"binary_data_size":8}},
      {"name":"s","shape":[2],"datatype":"BYTES","data":["hi",""]}]})";
  ASSERT_OK_AND_ASSIGN(RestInferRequest parsed,
                       ParseInferRequest(header + Bytes(a), absl::StrCat(header.size()), "m", ""));
  const inference::ModelInferRequest& request = parsed.request;
  ASSERT_EQ(request.raw_input_contents_size(), 3);
  EXPECT_EQ(request.raw_input_contents(0), Bytes(std::vector<int16_t>{1, -2, 300}));
  EXPECT_EQ(request.raw_input_contents(1), Bytes(a));
  EXPECT_EQ(request.raw_input_contents(2), std::string("\x02\0\0\0hi\0\0\0\0", 10));
  EXPECT_FALSE(request.inputs(0).has_contents());
  EXPECT_FALSE(request.inputs(2).has_contents());
}

TEST(ParseInferRequestTest, BinaryDataOutputIsTheDefaultThatBinaryDataOverrides) {
  ASSERT_OK_AND_ASSIGN(
      RestInferRequest parsed,
      Parse(R"({"parameters":{"binary_data_output":true,"bn_mode":"inference"},"inputs":[],
                "outputs":[{"name":"json","parameters":{"binary_data":false}},{"name":"bin"}]})"));
  EXPECT_FALSE(parsed.request.parameters().contains("binary_data_output"));
  EXPECT_TRUE(parsed.request.parameters().contains("bn_mode"));
  EXPECT_FALSE(parsed.output_format.IsBinary("json"));
  EXPECT_TRUE(parsed.output_format.IsBinary("bin"));
  EXPECT_TRUE(parsed.output_format.IsBinary("unlisted"));
  EXPECT_THAT(InvalidMessage(R"({"parameters":{"binary_data_output":1},"inputs":[]})"),
              HasSubstr("binary_data_output: must be a boolean"));
  EXPECT_THAT(InvalidMessage(R"({"inputs":[],"outputs":[{"name":"o",
                                 "parameters":{"binary_data":"yes"}}]})"),
              HasSubstr("outputs[0].parameters.binary_data: must be a boolean"));
}

TEST(ParseInferRequestTest, BinaryDataErrorsAreInvalidArgument) {
  const std::string header = R"({"inputs":[{"name":"a","shape":[2],"datatype":"FP32",)"
                             R"("parameters":{"binary_data_size":8}}]})";
  const std::string data = Bytes(std::vector<float>{1, 2});
  auto message = [](const std::string& body, std::optional<std::string> length) {
    absl::StatusOr<RestInferRequest> parsed =
        ParseInferRequest(body, length, "m", "");
    EXPECT_THAT(parsed, StatusIs(absl::StatusCode::kInvalidArgument));
    return std::string(parsed.status().message());
  };
  const std::string length = absl::StrCat(header.size());
  EXPECT_THAT(message(header + data, std::nullopt),
              HasSubstr("has no Inference-Header-Content-Length header"));
  EXPECT_THAT(message(header + data, "x"), HasSubstr("must be a byte count"));
  EXPECT_THAT(message(header + data, "-5"), HasSubstr("must be a byte count"));
  EXPECT_THAT(message(header + data, absl::StrCat(header.size() + data.size() + 1)),
              HasSubstr("must be a byte count"));
  EXPECT_THAT(message(header + data, "0"), HasSubstr("raw binary request"));
  // The JSON header cut short.
  EXPECT_THAT(message(header + data, absl::StrCat(header.size() - 1)),
              HasSubstr("not valid JSON"));
  EXPECT_THAT(message(header + data.substr(0, 7), length),
              HasSubstr("8 bytes, but only 7 bytes of binary data are left"));
  EXPECT_THAT(message(header + data + "z", length),
              HasSubstr("the binary data are 9 bytes, but the inputs' binary_data_size add "
                        "up to 8"));
  const std::string json_only = R"({"inputs":[]})";
  EXPECT_THAT(message(json_only + "zz", absl::StrCat(json_only.size())),
              HasSubstr("2 bytes follow the JSON header"));
  const std::string negative = R"({"inputs":[{"name":"a","shape":[2],"datatype":"FP32",)"
                               R"("parameters":{"binary_data_size":-8}}]})";
  EXPECT_THAT(message(negative + data, absl::StrCat(negative.size())),
              HasSubstr("binary_data_size: must be a non-negative integer"));
  const std::string both = R"({"inputs":[{"name":"a","shape":[2],"datatype":"FP32",)"
                           R"("data":[1,2],"parameters":{"binary_data_size":8}}]})";
  EXPECT_THAT(message(both + data, absl::StrCat(both.size())),
              HasSubstr("both binary data and \"data\""));
}

TEST(ParseInferRequestTest, DeepNestingAndRandomDamageAreErrorsNotCrashes) {
  // 200,000 levels of arrays: nlohmann parses and frees them without
  // recursion; the codec walks no deeper than the shape.
  const std::string deep = absl::StrCat(R"({"inputs":[{"name":"input","shape":[1,1],)",
                                        R"("datatype":"FP32","data":)",
                                        std::string(200000, '['), std::string(200000, ']'),
                                        "}]}");
  EXPECT_THAT(Parse(deep), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(Parse(std::string(200000, '[')), StatusIs(absl::StatusCode::kInvalidArgument));

  // Valid requests, JSON and binary, with bytes overwritten, dropped or
  // duplicated at random: every result is OK or InvalidArgument.
  const std::vector<float> row = {0.5f, 1.5f, -2.0f, 3.0f};
  const std::string json_body = R"({"id":"x","parameters":{"bn_mode":"inference"},
      "inputs":[{"name":"input","shape":[2,2],"datatype":"FP32","data":[[0.5,1.5],[-2,3]]}],
      "outputs":[{"name":"probabilities","parameters":{"binary_data":true}}]})";
  const std::string header = R"({"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32",)"
                             R"("parameters":{"binary_data_size":16}}]})";
  std::mt19937 rng(20261201);
  for (int i = 0; i < 20000; ++i) {
    const bool binary = i % 2 == 1;
    std::string body = binary ? header + Bytes(row) : json_body;
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits && !body.empty(); ++e) {
      const size_t at = rng() % body.size();
      switch (rng() % 3) {
        case 0: body[at] = static_cast<char>(rng()); break;
        case 1: body.erase(at, 1 + rng() % 8); break;
        default: body.insert(at, body.substr(at, 1 + rng() % 8)); break;
      }
    }
    absl::StatusOr<RestInferRequest> parsed = ParseInferRequest(
        body, binary ? std::optional<std::string>(absl::StrCat(header.size())) : std::nullopt,
        "m", "");
    if (!parsed.ok()) {
      ASSERT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument)
          << parsed.status() << " for " << body;
    }
  }
}

// ---- responses ---------------------------------------------------------------

inference::ModelInferResponse TypedResponse(const std::vector<float>& probabilities,
                                            const std::vector<int32_t>& classes) {
  inference::ModelInferResponse response;
  response.set_model_name("digits");
  response.set_model_version("3");
  response.set_id("req-1");
  auto* p = response.add_outputs();
  p->set_name("probabilities");
  p->set_datatype("FP32");
  p->add_shape(static_cast<int64_t>(classes.size()));
  p->add_shape(static_cast<int64_t>(probabilities.size() / classes.size()));
  p->mutable_contents()->mutable_fp32_contents()->Add(probabilities.begin(), probabilities.end());
  auto* c = response.add_outputs();
  c->set_name("predicted_class");
  c->set_datatype("INT32");
  c->add_shape(static_cast<int64_t>(classes.size()));
  c->mutable_contents()->mutable_int_contents()->Add(classes.begin(), classes.end());
  return response;
}

// The same response with raw_output_contents instead of typed contents.
inference::ModelInferResponse RawResponse(const std::vector<float>& probabilities,
                                          const std::vector<int32_t>& classes) {
  inference::ModelInferResponse response = TypedResponse(probabilities, classes);
  for (auto& output : *response.mutable_outputs()) output.clear_contents();
  response.add_raw_output_contents(Bytes(probabilities));
  response.add_raw_output_contents(Bytes(classes));
  return response;
}

TEST(EncodeInferResponseTest, JsonOutputsAsTheRestDocumentGivesThem) {
  ASSERT_OK_AND_ASSIGN(RestBody out,
                       EncodeInferResponse(TypedResponse({0.25f, 0.75f, 1, 0}, {1, 0}), {}));
  EXPECT_FALSE(out.has_binary_data());
  EXPECT_EQ(out.json_size, out.body.size());
  const json body = json::parse(out.body);
  EXPECT_EQ(body, json::parse(R"({
      "model_name": "digits", "model_version": "3", "id": "req-1",
      "outputs": [
        {"name": "probabilities", "datatype": "FP32", "shape": [2, 2],
         "data": [0.25, 0.75, 1.0, 0.0]},
        {"name": "predicted_class", "datatype": "INT32", "shape": [2], "data": [1, 0]}]})"));
}

TEST(EncodeInferResponseTest, RawOutputContentsGiveTheSameJson) {
  ASSERT_OK_AND_ASSIGN(RestBody typed,
                       EncodeInferResponse(TypedResponse({0.1f, 0.9f}, {1}), {}));
  ASSERT_OK_AND_ASSIGN(RestBody raw, EncodeInferResponse(RawResponse({0.1f, 0.9f}, {1}), {}));
  EXPECT_EQ(typed.body, raw.body);
}

TEST(EncodeInferResponseTest, Fp32OutputsReadBackAsTheSameFloatBitForBit) {
  const std::vector<float> values = {
      0.1f, 1.0f / 3.0f, 0.99999994f, std::nextafter(1.0f, 0.0f), FLT_MIN, FLT_TRUE_MIN,
      FLT_MAX, -FLT_MAX, 1e-30f, 123456.789f, 0.0f, -0.0f, 16777217.0f, 2.5e-8f};
  ASSERT_OK_AND_ASSIGN(RestBody out, EncodeInferResponse(
                                         TypedResponse(values, std::vector<int32_t>(1, 0)), {}));
  // The numbers as text, parsed both as double and as float.
  const json body = json::parse(out.body);
  const json& data = body["outputs"][0]["data"];
  ASSERT_EQ(data.size(), values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    const std::string text = data[i].dump();
    const double as_double = std::strtod(text.c_str(), nullptr);
    const float as_float = std::strtof(text.c_str(), nullptr);
    const float via_double = static_cast<float>(as_double);
    EXPECT_EQ(std::memcmp(&as_float, &values[i], sizeof(float)), 0)
        << text << " read as float is " << as_float << ", not " << values[i];
    EXPECT_EQ(std::memcmp(&via_double, &values[i], sizeof(float)), 0) << text;
    EXPECT_EQ(as_double, static_cast<double>(values[i])) << text;
  }
}

TEST(EncodeInferResponseTest, BinaryOutputsFollowTheJsonInOutputOrder) {
  const std::vector<float> probabilities = {0.25f, 0.75f, 0.5f, 0.5f};
  const std::vector<int32_t> classes = {1, 0};
  RestOutputFormat format;
  format.binary_by_default = true;
  for (const inference::ModelInferResponse& response :
       {TypedResponse(probabilities, classes), RawResponse(probabilities, classes)}) {
    ASSERT_OK_AND_ASSIGN(RestBody out, EncodeInferResponse(response, format));
    ASSERT_TRUE(out.has_binary_data());
    const json header = json::parse(out.body.substr(0, out.json_size));
    EXPECT_EQ(header["outputs"][0]["parameters"]["binary_data_size"], 16);
    EXPECT_EQ(header["outputs"][1]["parameters"]["binary_data_size"], 8);
    EXPECT_FALSE(header["outputs"][0].contains("data"));
    EXPECT_EQ(header["outputs"][0]["shape"], json::parse("[2,2]"));
    EXPECT_EQ(out.body.substr(out.json_size), Bytes(probabilities) + Bytes(classes));
  }
}

TEST(EncodeInferResponseTest, MixesBinaryAndJsonOutputsAsRequested) {
  RestOutputFormat format;
  format.binary_by_name["predicted_class"] = true;
  ASSERT_OK_AND_ASSIGN(RestBody out,
                       EncodeInferResponse(RawResponse({0.5f, 0.5f}, {1}), format));
  const json header = json::parse(out.body.substr(0, out.json_size));
  EXPECT_EQ(header["outputs"][0]["data"], json::parse("[0.5,0.5]"));
  EXPECT_FALSE(header["outputs"][0].contains("parameters"));
  EXPECT_EQ(header["outputs"][1]["parameters"]["binary_data_size"], 4);
  EXPECT_EQ(out.body.substr(out.json_size), Bytes(std::vector<int32_t>{1}));
}

TEST(EncodeInferResponseTest, ParametersAndOmittedFields) {
  inference::ModelInferResponse response;
  response.set_model_name("m");
  (*response.mutable_parameters())["flag"].set_bool_param(true);
  (*response.mutable_parameters())["n"].set_int64_param(-2);
  (*response.mutable_parameters())["u"].set_uint64_param(18446744073709551615u);
  (*response.mutable_parameters())["d"].set_double_param(0.5);
  (*response.mutable_parameters())["s"].set_string_param("x");
  ASSERT_OK_AND_ASSIGN(RestBody out, EncodeInferResponse(response, {}));
  EXPECT_EQ(json::parse(out.body), json::parse(R"({"model_name":"m","outputs":[],
      "parameters":{"flag":true,"n":-2,"u":18446744073709551615,"d":0.5,"s":"x"}})"));
}

TEST(EncodeInferResponseTest, ContentsThatDisagreeWithTheShapeAreInternal) {
  inference::ModelInferResponse short_typed = TypedResponse({0.5f, 0.5f}, {1});
  short_typed.mutable_outputs(0)->add_shape(3);  // [1, 2, 3]: 6 values expected
  EXPECT_THAT(EncodeInferResponse(short_typed, {}), StatusIs(absl::StatusCode::kInternal));
  inference::ModelInferResponse short_raw = RawResponse({0.5f, 0.5f}, {1});
  short_raw.mutable_raw_output_contents(0)->pop_back();
  EXPECT_THAT(EncodeInferResponse(short_raw, {}), StatusIs(absl::StatusCode::kInternal));
  inference::ModelInferResponse missing_raw = RawResponse({0.5f, 0.5f}, {1});
  missing_raw.mutable_raw_output_contents()->RemoveLast();
  EXPECT_THAT(EncodeInferResponse(missing_raw, {}), StatusIs(absl::StatusCode::kInternal));
}

TEST(MetadataToJsonTest, ServerAndModelMetadataAsTheRestDocumentGivesThem) {
  inference::ServerMetadataResponse server;
  server.set_name("bnserve");
  server.set_version("0.1.0");
  server.add_extensions("binary_tensor_data");
  EXPECT_EQ(ServerMetadataToJson(server),
            json::parse(R"({"name":"bnserve","version":"0.1.0",
                            "extensions":["binary_tensor_data"]})"));

  inference::ModelMetadataResponse model;
  model.set_name("digits");
  model.add_versions("1");
  model.add_versions("2");
  model.set_platform("bnserve_mlp");
  auto* input = model.add_inputs();
  input->set_name("input");
  input->set_datatype("FP32");
  input->add_shape(-1);
  input->add_shape(784);
  auto* output = model.add_outputs();
  output->set_name("predicted_class");
  output->set_datatype("INT32");
  output->add_shape(-1);
  EXPECT_EQ(ModelMetadataToJson(model), json::parse(R"({
      "name":"digits","versions":["1","2"],"platform":"bnserve_mlp",
      "inputs":[{"name":"input","datatype":"FP32","shape":[-1,784]}],
      "outputs":[{"name":"predicted_class","datatype":"INT32","shape":[-1]}]})"));
  (*model.mutable_properties())["alias"] = "prod";
  EXPECT_EQ(ModelMetadataToJson(model)["properties"], json::parse(R"({"alias":"prod"})"));
}

}  // namespace
}  // namespace bnserve
