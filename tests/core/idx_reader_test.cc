#include "core/idx_reader.h"

#include <zlib.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "core/dataset.h"
#include "core/eigen_types.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace bnserve {
namespace {

using ::bnserve::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;

std::string TempPath(const std::string& name) {
  const std::string dir = ::testing::TempDir() + "/idx_reader_test";
  std::filesystem::create_directories(dir);
  return dir + "/" + name;
}

std::vector<uint8_t> ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

void WriteBytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

// Writes `bytes` gzip-compressed through zlib's gzopen.
void WriteGzip(const std::string& path, const std::vector<uint8_t>& bytes) {
  gzFile file = gzopen(path.c_str(), "wb9");
  ASSERT_NE(file, nullptr) << path;
  ASSERT_EQ(gzwrite(file, bytes.data(), static_cast<unsigned>(bytes.size())),
            static_cast<int>(bytes.size()));
  ASSERT_EQ(gzclose(file), Z_OK);
}

std::vector<uint8_t> BigEndian(std::vector<uint32_t> words) {
  std::vector<uint8_t> out;
  for (uint32_t w : words) {
    for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<uint8_t>(w >> shift));
  }
  return out;
}

// Five 2x3 images whose pixels are distinct multiples of 1/255, and labels.
Matrix SampleImages() {
  Matrix images(5, 6);
  for (int i = 0; i < images.size(); ++i) {
    images.data()[i] = static_cast<float>((i * 37) % 256) / 255.0f;
  }
  return images;
}

Labels SampleLabels() {
  Labels labels(5);
  labels << 3, 0, 9, 1, 3;
  return labels;
}

TEST(IdxReaderTest, RawRoundTrip) {
  const std::string images_path = TempPath("raw-images");
  const std::string labels_path = TempPath("raw-labels");
  ASSERT_OK(WriteIdxImages(images_path, SampleImages(), 2, 3));
  ASSERT_OK(WriteIdxLabels(labels_path, SampleLabels()));
  // 16-byte header + 30 pixels; 8-byte header + 5 labels.
  EXPECT_EQ(ReadBytes(images_path).size(), 46u);
  EXPECT_EQ(ReadBytes(labels_path).size(), 13u);

  ASSERT_OK_AND_ASSIGN(Dataset data, ReadIdxDataset(images_path, labels_path, "sample"));
  EXPECT_EQ(data.name, "sample");
  EXPECT_EQ(data.num_classes, 10);
  ASSERT_EQ(data.features.rows(), 5);
  ASSERT_EQ(data.features.cols(), 6);
  EXPECT_EQ(data.features, SampleImages());
  EXPECT_EQ(data.labels, SampleLabels());
}

TEST(IdxReaderTest, ReadsKnownBytesInRowMajorOrderScaledTo01) {
  const std::string path = TempPath("known-images");
  std::vector<uint8_t> bytes = BigEndian({0x803, 2, 1, 2});
  for (uint8_t b : {0, 255, 51, 102}) bytes.push_back(b);
  WriteBytes(path, bytes);
  ASSERT_OK_AND_ASSIGN(Matrix images, ReadIdxImages(path));
  ASSERT_EQ(images.rows(), 2);
  ASSERT_EQ(images.cols(), 2);
  EXPECT_FLOAT_EQ(images(0, 0), 0.0f);
  EXPECT_FLOAT_EQ(images(0, 1), 1.0f);
  EXPECT_FLOAT_EQ(images(1, 0), 0.2f);
  EXPECT_FLOAT_EQ(images(1, 1), 0.4f);
}

TEST(IdxReaderTest, GzipFilesReadTheSameAsRaw) {
  const std::string raw_images = TempPath("gz-src-images");
  const std::string raw_labels = TempPath("gz-src-labels");
  ASSERT_OK(WriteIdxImages(raw_images, SampleImages(), 2, 3));
  ASSERT_OK(WriteIdxLabels(raw_labels, SampleLabels()));
  const std::string gz_images = TempPath("images.gz");
  const std::string gz_labels = TempPath("labels.gz");
  WriteGzip(gz_images, ReadBytes(raw_images));
  WriteGzip(gz_labels, ReadBytes(raw_labels));
  ASSERT_EQ(ReadBytes(gz_images)[0], 0x1f);  // really gzip

  ASSERT_OK_AND_ASSIGN(Dataset data, ReadIdxDataset(gz_images, gz_labels, "gz"));
  EXPECT_EQ(data.features, SampleImages());
  EXPECT_EQ(data.labels, SampleLabels());
}

// The header's count alone: raw and gzip, and an images file is no label file.
TEST(IdxReaderTest, LabelCountReadsOnlyTheHeader) {
  const std::string raw = TempPath("count-labels");
  ASSERT_OK(WriteIdxLabels(raw, SampleLabels()));
  ASSERT_OK_AND_ASSIGN(int64_t raw_count, ReadIdxLabelCount(raw));
  EXPECT_EQ(raw_count, SampleLabels().size());
  const std::string gz = TempPath("count-labels.gz");
  std::vector<uint8_t> bytes = ReadBytes(raw);
  bytes.resize(8);  // the header only: the count does not need the payload
  WriteGzip(gz, bytes);
  ASSERT_OK_AND_ASSIGN(int64_t gz_count, ReadIdxLabelCount(gz));
  EXPECT_EQ(gz_count, SampleLabels().size());
  const std::string images = TempPath("count-images");
  ASSERT_OK(WriteIdxImages(images, SampleImages(), 2, 3));
  EXPECT_THAT(ReadIdxLabelCount(images), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ReadIdxLabelCount(TempPath("no-such-file")),
              StatusIs(absl::StatusCode::kNotFound));
}

TEST(IdxReaderTest, MissingFileIsNotFound) {
  const std::string path = TempPath("does-not-exist");
  EXPECT_THAT(ReadIdxImages(path), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(ReadIdxLabels(path), StatusIs(absl::StatusCode::kNotFound));
  absl::StatusOr<Matrix> result = ReadIdxImages(path);
  EXPECT_THAT(std::string(result.status().message()), HasSubstr(path));
  // A directory is there but is no IDX file.
  EXPECT_THAT(ReadIdxLabels(::testing::TempDir()), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(IdxReaderTest, BadMagicNamesTheFileButNotItsBytes) {
  const std::string labels_path = TempPath("magic-labels");
  ASSERT_OK(WriteIdxLabels(labels_path, SampleLabels()));
  absl::StatusOr<Matrix> images = ReadIdxImages(labels_path);
  EXPECT_THAT(images, StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(std::string(images.status().message()), HasSubstr(labels_path));
  EXPECT_THAT(std::string(images.status().message()), HasSubstr("not an IDX image file"));
  // The expected magic (0x803) is named, the file's own first bytes (0x801) not.
  EXPECT_THAT(std::string(images.status().message()), Not(HasSubstr("801")));

  // Any file's first bytes stay unquoted ("root" as 0x726f6f74).
  const std::string passwd_like = TempPath("passwd-like");
  std::ofstream(passwd_like) << "root:x:0:0:root:/root:/bin/bash\n";
  for (const absl::Status& status : {ReadIdxImages(passwd_like).status(),
                                     ReadIdxLabels(passwd_like).status(),
                                     ReadIdxLabelCount(passwd_like).status()}) {
    EXPECT_THAT(status, StatusIs(absl::StatusCode::kInvalidArgument));
    EXPECT_THAT(std::string(status.message()), Not(HasSubstr("726f6f74")));
    EXPECT_THAT(std::string(status.message()), Not(HasSubstr("root:")));
  }

  const std::string images_path = TempPath("magic-images");
  ASSERT_OK(WriteIdxImages(images_path, SampleImages(), 2, 3));
  EXPECT_THAT(ReadIdxLabels(images_path), StatusIs(absl::StatusCode::kInvalidArgument));

  const std::string text_path = TempPath("text");
  WriteBytes(text_path, {'h', 'e', 'l', 'l', 'o', ' ', 'w', 'o', 'r', 'l', 'd', '\n'});
  EXPECT_THAT(ReadIdxLabels(text_path), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(IdxReaderTest, TruncatedRawFiles) {
  const std::string path = TempPath("truncated-images");
  ASSERT_OK(WriteIdxImages(path, SampleImages(), 2, 3));
  std::vector<uint8_t> bytes = ReadBytes(path);
  bytes.pop_back();
  WriteBytes(path, bytes);
  absl::StatusOr<Matrix> images = ReadIdxImages(path);
  EXPECT_THAT(images, StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(std::string(images.status().message()), HasSubstr("truncated"));
  EXPECT_THAT(std::string(images.status().message()), HasSubstr(path));

  // Cut inside the header.
  bytes.resize(10);
  WriteBytes(path, bytes);
  EXPECT_THAT(ReadIdxImages(path), StatusIs(absl::StatusCode::kInvalidArgument));
  WriteBytes(path, {});
  EXPECT_THAT(ReadIdxImages(path), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(IdxReaderTest, TrailingBytesAreRejected) {
  const std::string path = TempPath("trailing-labels");
  ASSERT_OK(WriteIdxLabels(path, SampleLabels()));
  std::vector<uint8_t> bytes = ReadBytes(path);
  bytes.push_back(1);
  WriteBytes(path, bytes);
  EXPECT_THAT(ReadIdxLabels(path), StatusIs(absl::StatusCode::kInvalidArgument));
  const std::string gz = TempPath("trailing-labels.gz");
  WriteGzip(gz, bytes);
  EXPECT_THAT(ReadIdxLabels(gz), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(IdxReaderTest, TruncatedGzipPayload) {
  // A gzip stream that is complete but holds fewer pixels than the header claims.
  const std::string raw = TempPath("short-raw");
  ASSERT_OK(WriteIdxImages(raw, SampleImages(), 2, 3));
  std::vector<uint8_t> bytes = ReadBytes(raw);
  bytes.resize(bytes.size() - 7);
  const std::string short_gz = TempPath("short.gz");
  WriteGzip(short_gz, bytes);
  absl::StatusOr<Matrix> images = ReadIdxImages(short_gz);
  EXPECT_THAT(images, StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(std::string(images.status().message()), HasSubstr("truncated"));
}

TEST(IdxReaderTest, CutGzipStream) {
  // A gzip file cut in the middle of its compressed data.
  Matrix big(200, 784);
  for (int i = 0; i < big.size(); ++i) big.data()[i] = static_cast<float>((i * 7919) % 256) / 255.0f;
  const std::string raw = TempPath("cut-raw");
  ASSERT_OK(WriteIdxImages(raw, big, 28, 28));
  const std::string gz = TempPath("cut.gz");
  WriteGzip(gz, ReadBytes(raw));
  std::vector<uint8_t> compressed = ReadBytes(gz);
  compressed.resize(compressed.size() / 2);
  WriteBytes(gz, compressed);
  absl::StatusOr<Matrix> images = ReadIdxImages(gz);
  EXPECT_THAT(images, StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(std::string(images.status().message()), HasSubstr(gz));
}

TEST(IdxReaderTest, CorruptGzipData) {
  Matrix big(50, 784);
  for (int i = 0; i < big.size(); ++i) big.data()[i] = static_cast<float>((i * 31) % 256) / 255.0f;
  const std::string raw = TempPath("corrupt-raw");
  ASSERT_OK(WriteIdxImages(raw, big, 28, 28));
  const std::string gz = TempPath("corrupt.gz");
  WriteGzip(gz, ReadBytes(raw));
  std::vector<uint8_t> compressed = ReadBytes(gz);
  for (size_t i = 20; i < compressed.size() - 20; i += 3) compressed[i] ^= 0x5a;
  WriteBytes(gz, compressed);
  EXPECT_THAT(ReadIdxImages(gz), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(IdxReaderTest, AbsurdHeaderDoesNotAllocate) {
  // Raw: 2^31 - 1 images of 28 x 28 claimed, 3 bytes present: rejected from the header.
  std::vector<uint8_t> bytes = BigEndian({0x803, 0x7fffffff, 28, 28});
  bytes.insert(bytes.end(), {1, 2, 3});
  const std::string raw = TempPath("absurd-raw");
  WriteBytes(raw, bytes);
  EXPECT_THAT(ReadIdxImages(raw), StatusIs(absl::StatusCode::kInvalidArgument));

  // Gzip, under the size cap (2^31 - 1 one-pixel images): read incrementally, truncated.
  bytes = BigEndian({0x803, 0x7fffffff, 1, 1});
  bytes.insert(bytes.end(), {1, 2, 3});
  const std::string gz = TempPath("absurd.gz");
  WriteGzip(gz, bytes);
  absl::StatusOr<Matrix> images = ReadIdxImages(gz);
  EXPECT_THAT(images, StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(std::string(images.status().message()), HasSubstr("truncated"));

  // Gzip over the cap.
  WriteGzip(gz, BigEndian({0x803, 0x7fffffff, 0xffff, 0xffff}));
  EXPECT_THAT(ReadIdxImages(gz), StatusIs(absl::StatusCode::kInvalidArgument));

  // Zero-sized dimensions.
  WriteGzip(gz, BigEndian({0x803, 0, 28, 28}));
  EXPECT_THAT(ReadIdxImages(gz), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(IdxReaderTest, CountMismatch) {
  const std::string images_path = TempPath("mismatch-images");
  const std::string labels_path = TempPath("mismatch-labels");
  ASSERT_OK(WriteIdxImages(images_path, SampleImages(), 2, 3));
  ASSERT_OK(WriteIdxLabels(labels_path, SampleLabels().head(4)));
  absl::StatusOr<Dataset> data = ReadIdxDataset(images_path, labels_path, "mismatch");
  EXPECT_THAT(data, StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(std::string(data.status().message()), HasSubstr("5 images"));
  EXPECT_THAT(std::string(data.status().message()), HasSubstr("4 labels"));
}

TEST(IdxReaderTest, LabelOutOfRange) {
  const std::string images_path = TempPath("range-images");
  const std::string labels_path = TempPath("range-labels");
  ASSERT_OK(WriteIdxImages(images_path, SampleImages(), 2, 3));
  Labels labels = SampleLabels();
  labels(2) = 10;
  ASSERT_OK(WriteIdxLabels(labels_path, labels));
  absl::StatusOr<Dataset> data = ReadIdxDataset(images_path, labels_path, "range");
  EXPECT_THAT(data, StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(std::string(data.status().message()), HasSubstr("label 10 at index 2"));
  // The same files are fine with 11 classes.
  ASSERT_OK_AND_ASSIGN(Dataset eleven, ReadIdxDataset(images_path, labels_path, "r", 11));
  EXPECT_EQ(eleven.num_classes, 11);
}

TEST(IdxReaderTest, WritersRejectBadInput) {
  EXPECT_THAT(WriteIdxImages(TempPath("w"), SampleImages(), 4, 4),
              StatusIs(absl::StatusCode::kInvalidArgument));
  Labels labels = SampleLabels();
  labels(0) = 256;
  EXPECT_THAT(WriteIdxLabels(TempPath("w"), labels),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(WriteIdxLabels(TempPath("no-such-dir/labels"), SampleLabels()),
              StatusIs(absl::StatusCode::kNotFound));
}

TEST(DatasetTest, TakeFirst) {
  Dataset data{SampleImages(), SampleLabels(), 10, "sample"};
  Dataset first = TakeFirst(data, 2);
  EXPECT_EQ(first.size(), 2);
  EXPECT_EQ(first.feature_size(), 6);
  EXPECT_EQ(first.features, SampleImages().topRows(2));
  EXPECT_EQ(first.labels, SampleLabels().head(2));
  EXPECT_EQ(first.name, "sample");
  EXPECT_EQ(TakeFirst(data, 0).size(), 5);
  EXPECT_EQ(TakeFirst(data, -1).size(), 5);
  EXPECT_EQ(TakeFirst(data, 99).size(), 5);
}

}  // namespace
}  // namespace bnserve
