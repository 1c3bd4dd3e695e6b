// FindDataDir on fake checkouts and installations in a temporary directory:
// the flag, then $BNSERVE_DATA_DIR, then the data directory next to bnctl
// (checkout build tree, installation prefix, the image's), then var/data of
// the current directory; and the NotFound message names what was read.
#include "client/data_dir.h"

#include <filesystem>
#include <fstream>
#include <string>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace bnserve {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

class DataDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::path(::testing::TempDir()) /
            ("bnserve_data_dir_" +
             std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(root_);
    fs::create_directories(root_);
    // A checkout with its build tree, and an unrelated working directory.
    Touch(root_ / "checkout/build/client/bnctl");
    fs::create_directories(root_ / "elsewhere");
    sources_.executable = (root_ / "checkout/build/client/bnctl").string();
    sources_.working_dir = (root_ / "elsewhere").string();
    sources_.installed_dir = (root_ / "image/usr/share/bnserve/data").string();
  }
  void TearDown() override { fs::remove_all(root_); }

  static void Touch(const fs::path& path) {
    fs::create_directories(path.parent_path());
    std::ofstream(path.string()).put('x');
  }
  std::string Dir(const std::string& relative) {
    fs::create_directories(root_ / relative);
    return (root_ / relative).string();
  }
  std::string Path(const std::string& relative) const { return (root_ / relative).string(); }

  fs::path root_;
  DataDirSources sources_;
};

TEST_F(DataDirTest, TheCheckoutOfBnctlWinsOverTheWorkingDirectory) {
  const std::string checkout_data = Dir("checkout/var/data");
  Dir("elsewhere/var/data");
  DataDirChoice choice = FindDataDir(sources_);
  EXPECT_EQ(choice.path, checkout_data);
  EXPECT_EQ(choice.origin, "the search");
  EXPECT_THAT(choice.searched,
              ElementsAre(checkout_data, Path("checkout/build/share/bnserve/data"),
                          sources_.installed_dir, Path("elsewhere/var/data")));
}

TEST_F(DataDirTest, AFlagThenTheVariableAreTakenAsGiven) {
  Dir("checkout/var/data");
  sources_.env = "/from/env";
  sources_.flag = "/from/flag";
  DataDirChoice choice = FindDataDir(sources_);
  EXPECT_EQ(choice.path, "/from/flag");
  EXPECT_EQ(choice.origin, "--data-dir");
  EXPECT_TRUE(choice.searched.empty());
  sources_.flag.clear();
  choice = FindDataDir(sources_);
  EXPECT_EQ(choice.path, "/from/env");
  EXPECT_EQ(choice.origin, "$BNSERVE_DATA_DIR");
}

TEST_F(DataDirTest, AnInstallationPrefixThenTheImageThenTheWorkingDirectory) {
  sources_.executable = Path("prefix/bin/bnctl");
  Touch(sources_.executable);
  const std::string cwd_data = Dir("elsewhere/var/data");
  EXPECT_EQ(FindDataDir(sources_).path, cwd_data);
  const std::string image_data = Dir("image/usr/share/bnserve/data");
  EXPECT_EQ(FindDataDir(sources_).path, image_data);
  const std::string prefix_data = Dir("prefix/share/bnserve/data");
  EXPECT_EQ(FindDataDir(sources_).path, prefix_data);
}

TEST_F(DataDirTest, ACandidateIsLookedAtOnce) {
  // bnctl at <cwd>/x/bin/bnctl: its ../../var/data is the working directory's.
  sources_.executable = Path("elsewhere/x/bin/bnctl");
  EXPECT_THAT(FindDataDir(sources_).searched,
              ElementsAre(Path("elsewhere/var/data"), Path("elsewhere/x/share/bnserve/data"),
                          sources_.installed_dir));
}

TEST_F(DataDirTest, WithoutAnyDataDirectoryTheMessageListsWhereItLooked) {
  DataDirChoice choice = FindDataDir(sources_);
  EXPECT_EQ(choice.path, Path("checkout/var/data"));  // where setup would put them
  absl::Status status = ExplainDataDir(
      absl::NotFoundError("cannot open x (run scripts/setup.sh to prepare the data sets)"),
      choice);
  EXPECT_TRUE(absl::IsNotFound(status));
  EXPECT_THAT(status.message(), HasSubstr("cannot open x (run scripts/setup.sh"));
  for (const std::string& dir : choice.searched) EXPECT_THAT(status.message(), HasSubstr(dir));
  EXPECT_THAT(status.message(), HasSubstr("found none"));
  EXPECT_THAT(status.message(), HasSubstr("--data-dir"));
  EXPECT_THAT(status.message(), HasSubstr("BNSERVE_DATA_DIR"));
}

TEST_F(DataDirTest, TheMessageNamesTheDirectoryReadAndWhyAndKeepsOtherErrors) {
  const std::string data = Dir("checkout/var/data");
  absl::Status found = ExplainDataDir(absl::NotFoundError("no t10k file"), FindDataDir(sources_));
  EXPECT_THAT(found.message(), HasSubstr("read the data directory " + data));
  sources_.env = "/nowhere";
  absl::Status given = ExplainDataDir(absl::NotFoundError("no t10k file"), FindDataDir(sources_));
  EXPECT_THAT(given.message(), HasSubstr("/nowhere given by $BNSERVE_DATA_DIR"));
  const absl::Status corrupt = absl::InvalidArgumentError("bad magic");
  EXPECT_EQ(ExplainDataDir(corrupt, FindDataDir(sources_)), corrupt);
}

TEST_F(DataDirTest, ThisProcessKnowsItsExecutableAndDirectory) {
  DataDirSources sources = ThisProcessDataDirSources("");
  EXPECT_EQ(fs::path(sources.executable).filename(), "client_data_dir_test");
  EXPECT_EQ(sources.working_dir, fs::current_path().string());
  EXPECT_EQ(sources.installed_dir, kInstalledDataDir);
}

}  // namespace
}  // namespace bnserve
