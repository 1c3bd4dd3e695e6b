// Helpers of the metrics tests: a parser of the Prometheus text format good
// enough to read back what ServerMetrics writes, a histogram consistency
// check, and `promtool check metrics` run on an exposition. No gRPC here.
#ifndef BNSERVE_TESTS_SERVER_METRICS_TEST_UTIL_H_
#define BNSERVE_TESTS_SERVER_METRICS_TEST_UTIL_H_

#include <sys/wait.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "gtest/gtest.h"
#include "tests/server/server_test_util.h"

namespace bnserve {
namespace testing {

// One sample line: name{labels} value.
struct MetricSample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

// The samples of an exposition, in order; `# HELP` / `# TYPE` lines go to
// `*types` (name -> type) when it is not null. A line that does not parse is
// a test failure naming it.
inline std::vector<MetricSample> ParseExposition(
    const std::string& text, std::map<std::string, std::string>* types = nullptr) {
  std::vector<MetricSample> samples;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    if (absl::StartsWith(line, "# TYPE ")) {
      std::vector<std::string> parts = absl::StrSplit(line.substr(7), ' ');
      if (parts.size() == 2 && types != nullptr) (*types)[parts[0]] = parts[1];
      continue;
    }
    if (absl::StartsWith(line, "#")) continue;
    MetricSample sample;
    size_t i = 0;
    while (i < line.size() && line[i] != '{' && line[i] != ' ') ++i;
    sample.name = std::string(line.substr(0, i));
    bool ok = !sample.name.empty();
    if (ok && i < line.size() && line[i] == '{') {
      ++i;
      while (ok && i < line.size() && line[i] != '}') {
        const size_t eq = line.find('=', i);
        ok = eq != absl::string_view::npos && eq + 1 < line.size() && line[eq + 1] == '"';
        if (!ok) break;
        const std::string label(line.substr(i, eq - i));
        std::string value;
        size_t j = eq + 2;
        for (; j < line.size() && line[j] != '"'; ++j) {
          if (line[j] == '\\' && j + 1 < line.size()) {
            ++j;
            value += line[j] == 'n' ? '\n' : line[j];
          } else {
            value += line[j];
          }
        }
        ok = j < line.size();
        sample.labels[label] = value;
        i = j + 1;
        if (i < line.size() && line[i] == ',') ++i;
      }
      ok = ok && i < line.size() && line[i] == '}';
      ++i;
    }
    ok = ok && i < line.size() && line[i] == ' ';
    if (ok) {
      std::vector<absl::string_view> rest = absl::StrSplit(line.substr(i + 1), ' ');
      const std::string number(rest[0]);
      if (number == "+Inf" || number == "Inf") {
        sample.value = HUGE_VAL;
      } else if (number == "-Inf") {
        sample.value = -HUGE_VAL;
      } else {
        ok = absl::SimpleAtod(number, &sample.value);
      }
    }
    if (!ok) {
      ADD_FAILURE() << "not a sample line: " << line;
      continue;
    }
    samples.push_back(std::move(sample));
  }
  return samples;
}

// Whether `sample` is named `name` and its labels include all of `labels`.
inline bool IsSampleOf(const MetricSample& sample, const std::string& name,
                       const std::map<std::string, std::string>& labels) {
  if (sample.name != name) return false;
  for (const auto& [key, value] : labels) {
    auto it = sample.labels.find(key);
    if (it == sample.labels.end() || it->second != value) return false;
  }
  return true;
}

// The sum of the samples named `name` whose labels include all of `labels`
// (0 when there are none).
inline double SumOf(const std::vector<MetricSample>& samples, const std::string& name,
                    const std::map<std::string, std::string>& labels = {}) {
  double sum = 0;
  for (const MetricSample& sample : samples) {
    if (IsSampleOf(sample, name, labels)) sum += sample.value;
  }
  return sum;
}

// How many samples named `name` have all of `labels`.
inline int CountOf(const std::vector<MetricSample>& samples, const std::string& name,
                   const std::map<std::string, std::string>& labels = {}) {
  int count = 0;
  for (const MetricSample& sample : samples) count += IsSampleOf(sample, name, labels) ? 1 : 0;
  return count;
}

// Checks every series of every histogram in the exposition: its buckets'
// counts never decrease as `le` grows, its +Inf bucket equals its _count,
// and it has a _sum. Returns the number of series checked.
inline int ExpectHistogramsConsistent(const std::string& text) {
  std::map<std::string, std::string> types;
  const std::vector<MetricSample> samples = ParseExposition(text, &types);
  int checked = 0;
  for (const auto& [family, type] : types) {
    if (type != "histogram") continue;
    // Series by their labels without `le`.
    std::map<std::map<std::string, std::string>, std::map<double, double>> buckets;
    std::map<std::map<std::string, std::string>, double> counts;
    std::set<std::map<std::string, std::string>> sums;
    for (const MetricSample& sample : samples) {
      std::map<std::string, std::string> labels = sample.labels;
      if (sample.name == family + "_bucket") {
        double le = 0;
        const std::string bound = labels["le"];
        if (bound == "+Inf") {
          le = HUGE_VAL;
        } else {
          EXPECT_TRUE(absl::SimpleAtod(bound, &le)) << family << " le=" << bound;
        }
        labels.erase("le");
        buckets[labels][le] = sample.value;
      } else if (sample.name == family + "_count") {
        counts[labels] = sample.value;
      } else if (sample.name == family + "_sum") {
        sums.insert(labels);
      }
    }
    for (const auto& [labels, by_bound] : buckets) {
      ++checked;
      std::string series = family;
      for (const auto& [key, value] : labels) absl::StrAppend(&series, " ", key, "=", value);
      double previous = 0;
      for (const auto& [le, count] : by_bound) {
        EXPECT_GE(count, previous) << series << " le=" << le;
        previous = count;
      }
      EXPECT_TRUE(by_bound.count(HUGE_VAL)) << series << " has no +Inf bucket";
      EXPECT_TRUE(counts.count(labels)) << series << " has no _count";
      if (by_bound.count(HUGE_VAL) && counts.count(labels)) {
        EXPECT_EQ(by_bound.at(HUGE_VAL), counts.at(labels)) << series;
      }
      EXPECT_TRUE(sums.count(labels)) << series << " has no _sum";
    }
  }
  return checked;
}

// The lines `promtool check metrics` writes for `text`, and its exit code.
struct PromtoolResult {
  int exit_code = -1;
  std::vector<std::string> lines;
};

inline PromtoolResult RunPromtool(const std::string& text) {
  PromtoolResult result;
  const std::string path = TempPath("exposition.txt");
  {
    std::ofstream out(path, std::ios::binary);
    out << text;
  }
  FILE* pipe = popen(absl::StrCat("promtool check metrics < '", path, "' 2>&1").c_str(), "r");
  if (pipe == nullptr) return result;
  std::string output;
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof buffer, pipe)) > 0) output.append(buffer, n);
  const int status = pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  result.lines = absl::StrSplit(output, '\n', absl::SkipEmpty());
  std::filesystem::remove(path);
  return result;
}

// The names Triton gives its inference metrics, which bnserve keeps so that
// Triton's dashboards work, and the only lint promtool may report for them:
// Triton's counters do not end in _total, two of them end in _count (a
// suffix promtool keeps for histograms and summaries), and two name their
// unit "us". promtool reports these as lint (exit code 3), not as parse
// errors; they are the price of compatibility and are accepted for these
// six names only.
inline bool IsAcceptedTritonLint(const std::string& line) {
  static const char* const kTritonNames[] = {"nv_inference_request_success",
                                             "nv_inference_request_failure",
                                             "nv_inference_count",
                                             "nv_inference_exec_count",
                                             "nv_inference_request_duration_us",
                                             "nv_inference_compute_infer_duration_us"};
  for (const char* name : kTritonNames) {
    if (line == absl::StrCat(name, " counter metrics should have \"_total\" suffix")) return true;
    if (absl::EndsWith(name, "_us") &&
        line == absl::StrCat(name, " metric names should not contain abbreviated units")) {
      return true;
    }
    if (absl::EndsWith(name, "_count") &&
        line == absl::StrCat(name,
                             " non-histogram and non-summary metrics should not have "
                             "\"_count\" suffix")) {
      return true;
    }
  }
  return false;
}

// Runs promtool on `text` and fails the test for anything it reports but the
// accepted Triton lint, or for an exit code other than 0 (clean) or 3 (lint
// only, all of it accepted). Returns the accepted lines.
inline std::vector<std::string> ExpectPromtoolAccepts(const std::string& text) {
  const PromtoolResult result = RunPromtool(text);
  std::vector<std::string> accepted;
  std::string report;
  for (const std::string& line : result.lines) {
    if (IsAcceptedTritonLint(line)) {
      accepted.push_back(line);
    } else {
      absl::StrAppend(&report, "\n  ", line);
    }
  }
  EXPECT_TRUE(report.empty()) << "promtool check metrics reports:" << report;
  if (accepted.empty()) {
    EXPECT_EQ(result.exit_code, 0) << "promtool (is the Debian package prometheus installed? "
                                      "scripts/setup.sh installs it)";
  } else {
    EXPECT_EQ(result.exit_code, 3) << "promtool: lint only is exit code 3";
  }
  return accepted;
}

}  // namespace testing
}  // namespace bnserve

#endif  // BNSERVE_TESTS_SERVER_METRICS_TEST_UTIL_H_
