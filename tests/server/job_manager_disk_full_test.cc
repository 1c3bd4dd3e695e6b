// A registry whose disk fills while a job trains, on a real full file system:
// a 4 MiB tmpfs mounted for each test (mount needs root, as CI runs the
// suite; elsewhere the tests are skipped, saying why). SQLite sees ENOSPC
// from the kernel and answers SQLITE_FULL, as on any full disk.
#include <fcntl.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/data_resolver.h"
#include "server/job_manager.h"
#include "server/model_catalog.h"
#include "server/sqlite_model_store.h"
#include "tests/server/server_test_util.h"
#include "tests/testing/status_matchers.h"

namespace bnserve {
namespace {

using ::bnserve::testing::SmallTrainRequest;
using ::bnserve::testing::StatusIs;
using ::testing::HasSubstr;

class JobManagerDiskFullTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "mounting a small tmpfs needs root";
    std::string dir = ::testing::TempDir() + "/bnserve_disk_full_XXXXXX";
    ASSERT_NE(mkdtemp(dir.data()), nullptr) << std::strerror(errno);
    dir_ = dir;
    if (mount("tmpfs", dir_.c_str(), "tmpfs", 0, "size=4m,mode=0700") != 0) {
      const int error = errno;
      rmdir(dir_.c_str());
      dir_.clear();
      GTEST_SKIP() << "cannot mount a tmpfs here: " << std::strerror(error);
    }
    path_ = dir_ + "/registry.db";
  }

  void TearDown() override {
    StopManager();
    if (dir_.empty()) return;
    EXPECT_EQ(umount2(dir_.c_str(), MNT_DETACH), 0) << std::strerror(errno);
    rmdir(dir_.c_str());
  }

  void StartManager(JobManagerOptions options = {}) {
    auto store = SqliteModelStore::Open(path_);
    ASSERT_OK(store.status());
    store_ = *std::move(store);
    catalog_ = std::make_unique<ModelCatalog>(store_.get());
    data_ = std::make_unique<DataResolver>("var/data");
    jobs_ = std::make_unique<JobManager>(store_.get(), catalog_.get(), data_.get(), options);
    ASSERT_OK(jobs_->Start());
  }

  void StopManager() {
    jobs_.reset();
    data_.reset();
    catalog_.reset();
    store_.reset();
  }

  // Fills what is left of the file system with one file.
  void FillTheDisk() {
    const std::string filler = dir_ + "/filler";
    const int fd = open(filler.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    ASSERT_GE(fd, 0) << std::strerror(errno);
    const std::vector<char> block(4096, 'x');
    while (write(fd, block.data(), block.size()) > 0) {
    }
    const int error = errno;
    close(fd);
    ASSERT_EQ(error, ENOSPC) << std::strerror(error);
  }

  void FreeTheDisk() { ASSERT_EQ(unlink((dir_ + "/filler").c_str()), 0); }

  v1::Job WaitForEnd(const std::string& job_id) {
    const absl::Time deadline = absl::Now() + absl::Seconds(20);
    while (true) {
      absl::StatusOr<v1::Job> job = jobs_->Get(job_id);
      EXPECT_OK(job.status());
      if (!job.ok()) return {};
      const v1::JobState s = job->state();
      if (s == v1::SUCCEEDED || s == v1::FAILED || s == v1::CANCELLED ||
          absl::Now() > deadline) {
        return *job;
      }
      absl::SleepFor(absl::Milliseconds(5));
    }
  }

  std::string dir_;
  std::string path_;
  std::unique_ptr<SqliteModelStore> store_;
  std::unique_ptr<ModelCatalog> catalog_;
  std::unique_ptr<DataResolver> data_;
  std::unique_ptr<JobManager> jobs_;
};

// The disk fills after epoch 2 of 10: the job ends FAILED "registry disk
// full" at epoch 3 with the two epochs the store holds, and after a restart
// the store gives back that same job (state, reason and metrics), not
// "interrupted by restart". A new job is refused RESOURCE_EXHAUSTED while the
// disk is full (its COMMIT is what fails), and trains once there is room.
TEST_F(JobManagerDiskFullTest, AJobThatFillsTheDiskEndsTheSameBeforeAndAfterARestart) {
  JobManagerOptions options;
  options.on_epoch_finished = [this](const FinishedEpoch& epoch) {
    // Runs before the epoch's metrics are stored.
    if (epoch.epoch == 3) FillTheDisk();
  };
  StartManager(options);
  ASSERT_OK_AND_ASSIGN(v1::Job queued, jobs_->Submit(SmallTrainRequest("full", 10)));
  const v1::Job reported = WaitForEnd(queued.job_id());
  ASSERT_EQ(reported.state(), v1::FAILED) << reported.reason();
  EXPECT_THAT(reported.reason(), HasSubstr("registry disk full"));
  EXPECT_THAT(reported.reason(), HasSubstr("epoch 3"));
  ASSERT_EQ(reported.epochs_size(), 2);
  EXPECT_EQ(reported.epochs(1).epoch(), 2);

  FillTheDisk();  // what the reserve left free
  const absl::StatusOr<v1::Job> refused = jobs_->Submit(SmallTrainRequest("full", 2));
  EXPECT_THAT(refused.status(), StatusIs(absl::StatusCode::kResourceExhausted));
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("registry disk full"));

  StopManager();
  StartManager();  // the disk is still full
  ASSERT_OK_AND_ASSIGN(v1::Job reread, jobs_->Get(queued.job_id()));
  EXPECT_EQ(reread.state(), v1::FAILED);
  EXPECT_EQ(reread.reason(), reported.reason());
  ASSERT_EQ(reread.epochs_size(), reported.epochs_size());
  for (int i = 0; i < reported.epochs_size(); ++i) {
    EXPECT_EQ(reread.epochs(i).SerializeAsString(), reported.epochs(i).SerializeAsString());
  }
  EXPECT_EQ(reread.finished_at().SerializeAsString(),
            reported.finished_at().SerializeAsString());

  StopManager();
  FreeTheDisk();
  StartManager();
  ASSERT_OK_AND_ASSIGN(v1::Job again, jobs_->Submit(SmallTrainRequest("full", 2)));
  const v1::Job done = WaitForEnd(again.job_id());
  EXPECT_EQ(done.state(), v1::SUCCEEDED) << done.reason();
  EXPECT_EQ(done.epochs_size(), 2);
}

}  // namespace
}  // namespace bnserve
