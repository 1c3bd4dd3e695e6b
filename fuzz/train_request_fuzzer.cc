// libFuzzer target: a TrainRequest's validation (PlanTraining, what Train
// runs before a job is queued) on arbitrary bytes, with a data directory
// that holds nothing.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "bnserve/v1/training_service.pb.h"
#include "server/data_resolver.h"
#include "server/training_plan.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static bnserve::DataResolver* resolver = [] {
    char dir[] = "/tmp/bnserve-fuzz-train-XXXXXX";
    if (mkdtemp(dir) == nullptr) std::abort();
    return new bnserve::DataResolver(dir);
  }();
  bnserve::v1::TrainRequest request;
  if (!request.ParseFromArray(data, static_cast<int>(size))) return 0;
  bnserve::JobLimits limits;
  limits.max_job_bytes = int64_t{256} << 20;
  (void)bnserve::PlanTraining(request, limits, *resolver);
  return 0;
}
