#include "server/data_resolver.h"

#include <sys/stat.h>

#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "core/idx_reader.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/server_test_util.h"
#include "tests/testing/status_matchers.h"

namespace bnserve {
namespace {

using ::bnserve::testing::StatusIs;
using ::bnserve::testing::SyntheticData;
using ::bnserve::testing::TempPath;
using ::testing::HasSubstr;

namespace fs = std::filesystem;

// A data directory with one small IDX pair in it, and a secret file and an
// IDX pair next to (outside) it.
class DataResolverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = TempPath("root");
    data_dir_ = root_ + "/data";
    fs::create_directories(data_dir_ + "/mine");
    Matrix images = Matrix::Constant(6, 4, 0.5f);
    Labels labels(6);
    labels << 0, 1, 2, 0, 1, 2;
    ASSERT_OK(WriteIdxImages(data_dir_ + "/mine/images.idx", images, 2, 2));
    ASSERT_OK(WriteIdxLabels(data_dir_ + "/mine/labels.idx", labels));
    ASSERT_OK(WriteIdxImages(root_ + "/outside-images.idx", images, 2, 2));
    ASSERT_OK(WriteIdxLabels(root_ + "/outside-labels.idx", labels));
    resolver_ = std::make_unique<DataResolver>(data_dir_);
  }

  v1::DataSpec Idx(const std::string& images, const std::string& labels, int limit = 0) {
    v1::DataSpec spec;
    spec.mutable_idx()->set_images_path(images);
    spec.mutable_idx()->set_labels_path(labels);
    spec.mutable_idx()->set_limit(limit);
    return spec;
  }

  std::string root_;
  std::string data_dir_;
  std::unique_ptr<DataResolver> resolver_;
};

TEST_F(DataResolverTest, ReadsIdxPairsInsideTheDataDirectory) {
  ASSERT_OK_AND_ASSIGN(auto data, resolver_->Resolve(Idx("mine/images.idx", "mine/labels.idx"), 3));
  EXPECT_EQ(data->size(), 6);
  EXPECT_EQ(data->feature_size(), 4);
  ASSERT_OK_AND_ASSIGN(data, resolver_->Resolve(Idx("./mine/../mine/images.idx",
                                                    data_dir_ + "/mine/labels.idx", 4),
                                                3));
  EXPECT_EQ(data->size(), 4);
}

TEST_F(DataResolverTest, RejectsPathsThatLeaveTheDataDirectory) {
  for (const std::string& images :
       {std::string("../outside-images.idx"), std::string("mine/../../outside-images.idx"),
        root_ + "/outside-images.idx", std::string("/etc/passwd"), std::string(""),
        std::string("..")}) {
    EXPECT_THAT(resolver_->Resolve(Idx(images, "mine/labels.idx"), 3),
                StatusIs(absl::StatusCode::kInvalidArgument))
        << images;
    EXPECT_THAT(resolver_->Check(Idx(images, "mine/labels.idx"), 3),
                StatusIs(absl::StatusCode::kInvalidArgument))
        << images;
  }
  // A symlink inside that points outside: lexically fine, stopped by the open.
  fs::create_symlink(root_, data_dir_ + "/escape");
  EXPECT_THAT(resolver_->Resolve(Idx("escape/outside-images.idx", "escape/outside-labels.idx"), 3),
              StatusIs(absl::StatusCode::kInvalidArgument));
  // A missing file inside is NotFound, not a path error.
  EXPECT_THAT(resolver_->Resolve(Idx("mine/none.idx", "mine/labels.idx"), 3),
              StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(DataResolverTest, FollowsSymlinksThatStayInsideOnly) {
  fs::create_symlink("mine", data_dir_ + "/alias");
  fs::create_symlink("mine/labels.idx", data_dir_ + "/labels-link.idx");
  ASSERT_OK_AND_ASSIGN(auto data, resolver_->Resolve(Idx("alias/images.idx", "labels-link.idx"), 3));
  EXPECT_EQ(data->size(), 6);
  // An absolute symlink is refused even when it points inside
  // (RESOLVE_BENEATH), as the O_NOFOLLOW fallback refuses every symlink.
  fs::create_symlink(data_dir_ + "/mine/labels.idx", data_dir_ + "/absolute.idx");
  EXPECT_THAT(resolver_->Resolve(Idx("mine/images.idx", "absolute.idx"), 3),
              StatusIs(absl::StatusCode::kInvalidArgument));
  fs::create_symlink(root_ + "/outside-labels.idx", data_dir_ + "/out.idx");
  fs::create_symlink("../outside-labels.idx", data_dir_ + "/out-relative.idx");
  for (const char* labels : {"out.idx", "out-relative.idx"}) {
    EXPECT_THAT(resolver_->Resolve(Idx("mine/images.idx", labels), 3),
                StatusIs(absl::StatusCode::kInvalidArgument))
        << labels;
    EXPECT_THAT(resolver_->Check(Idx("mine/images.idx", labels), 3),
                StatusIs(absl::StatusCode::kInvalidArgument))
        << labels;
  }
}

TEST_F(DataResolverTest, AFifoIsRefusedWithoutBlocking) {
  ASSERT_EQ(mkfifo((data_dir_ + "/fifo").c_str(), 0600), 0);
  const absl::Status status = resolver_->Resolve(Idx("mine/images.idx", "fifo"), 3).status();
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(std::string(status.message()), HasSubstr("not a regular file"));
}

// A symlink swapped between a file inside and one outside while requests
// resolve it: every answer is the inside file's or a refusal, never the
// outside file's data (the path is opened once, beneath the directory).
TEST_F(DataResolverTest, ASymlinkSwappedDuringRequestsNeverLeadsOut) {
  // The outside pair has 9 rows, the inside one 6.
  Matrix images = Matrix::Constant(9, 4, 0.25f);
  Labels labels(9);
  labels << 0, 1, 2, 0, 1, 2, 0, 1, 2;
  ASSERT_OK(WriteIdxImages(root_ + "/outside-images.idx", images, 2, 2));
  ASSERT_OK(WriteIdxLabels(root_ + "/outside-labels.idx", labels));
  const std::string link = data_dir_ + "/toggle";
  fs::create_symlink("mine", link);
  std::atomic<bool> stop{false};
  std::thread toggler([&] {
    for (int i = 0; !stop.load(); ++i) {
      const std::string next = link + ".next";
      std::error_code ignored;
      fs::remove(next, ignored);
      fs::create_symlink(i % 2 == 0 ? root_ : data_dir_ + "/mine", next, ignored);
      fs::rename(next, link, ignored);  // atomic replace
    }
  });
  int inside = 0;
  int refused = 0;
  // At least 3,000 requests, and on until both answers were seen (the
  // toggler thread may start late on a loaded machine), within a bound.
  int requests = 0;
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  for (; requests < 3000 || ((inside == 0 || refused == 0) && absl::Now() < deadline);
       ++requests) {
    absl::StatusOr<std::shared_ptr<const Dataset>> data =
        resolver_->Resolve(Idx("toggle/images.idx", "mine/labels.idx"), 3);
    if (data.ok()) {
      ASSERT_EQ((*data)->size(), 6) << "read the outside file through the swapped symlink";
      ++inside;
    } else {
      // Outside, or caught between two symlinks; never outside data.
      ASSERT_THAT(data.status().code(), ::testing::AnyOf(absl::StatusCode::kInvalidArgument,
                                                         absl::StatusCode::kNotFound))
          << data.status();
      ++refused;
    }
  }
  stop = true;
  toggler.join();
  EXPECT_GT(refused, 0);  // the swap really happened during the loop
  EXPECT_EQ(inside + refused, requests);
}

TEST_F(DataResolverTest, ValidatesInlineData) {
  v1::DataSpec spec;
  *spec.mutable_inline_data() = SyntheticData(5, 3, 3, 1);
  ASSERT_OK_AND_ASSIGN(auto data, resolver_->Resolve(spec, 3));
  EXPECT_EQ(data->size(), 5);
  EXPECT_EQ(data->features(2, 1), spec.inline_data().features().values(2 * 3 + 1));
  EXPECT_EQ(data->labels(4), spec.inline_data().labels(4));

  auto expect_invalid = [&](v1::DataSpec bad, const char* message) {
    EXPECT_THAT(resolver_->Resolve(bad, 3), StatusIs(absl::StatusCode::kInvalidArgument))
        << message;
    EXPECT_THAT(resolver_->Check(bad, 3), StatusIs(absl::StatusCode::kInvalidArgument))
        << message;
  };
  v1::DataSpec bad = spec;
  bad.mutable_inline_data()->mutable_features()->add_values(0.5f);
  expect_invalid(bad, "values count");
  bad = spec;
  bad.mutable_inline_data()->mutable_features()->set_values(0, NAN);
  expect_invalid(bad, "nan");
  bad = spec;
  bad.mutable_inline_data()->add_labels(0);
  expect_invalid(bad, "label count");
  bad = spec;
  bad.mutable_inline_data()->set_labels(0, 3);
  expect_invalid(bad, "label too large");
  bad = spec;
  bad.mutable_inline_data()->set_labels(0, -1);
  expect_invalid(bad, "negative label");
  bad = spec;
  bad.mutable_inline_data()->mutable_features()->add_shape(1);
  expect_invalid(bad, "three dimensions");
  expect_invalid(v1::DataSpec(), "no source");
}

TEST(DataResolverBuiltinTest, LoadsEachSplitOnceAndAppliesTheLimit) {
  DataResolver resolver("var/data");
  v1::DataSpec spec;
  spec.mutable_builtin()->set_name("mnist-digits");
  spec.mutable_builtin()->set_split(v1::TEST);
  ASSERT_OK_AND_ASSIGN(auto all, resolver.Resolve(spec, 10));
  EXPECT_EQ(all->size(), 2000);
  EXPECT_EQ(all->feature_size(), 784);
  ASSERT_OK_AND_ASSIGN(auto again, resolver.Resolve(spec, 10));
  EXPECT_EQ(all.get(), again.get());  // the cached split, not a reload
  spec.mutable_builtin()->set_limit(30);
  ASSERT_OK_AND_ASSIGN(auto some, resolver.Resolve(spec, 10));
  EXPECT_EQ(some->size(), 30);
  EXPECT_EQ(some->features.row(29), all->features.row(29));
  // Labels 0..9 do not fit 5 classes.
  EXPECT_THAT(resolver.Resolve(spec, 5), StatusIs(absl::StatusCode::kInvalidArgument));
  spec.mutable_builtin()->set_name("cifar");
  EXPECT_THAT(resolver.Resolve(spec, 10), StatusIs(absl::StatusCode::kInvalidArgument));
  spec.mutable_builtin()->set_name("mnist-digits");
  spec.mutable_builtin()->set_limit(-1);
  EXPECT_THAT(resolver.Check(spec, 10), StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace bnserve
