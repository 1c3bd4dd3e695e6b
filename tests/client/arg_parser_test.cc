// Unit tests of bnctl's hand-written flag parser.
#include "client/arg_parser.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace bnserve {
namespace {

using ::bnserve::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

struct Flags {
  std::string model;
  int epochs = 20;
  double lr = 0.01;
  bool batchnorm = true;
  bool follow = false;
  absl::Duration duration = absl::Seconds(5);
  std::vector<int> hidden = {100};
};

ArgParser MakeParser(Flags* flags) {
  ArgParser parser("test");
  parser.AddString("model", &flags->model, "model");
  parser.AddInt("epochs", &flags->epochs, "epochs");
  parser.AddDouble("lr", &flags->lr, "learning rate");
  parser.AddBool("batchnorm", &flags->batchnorm, "bn");
  parser.AddBool("follow", &flags->follow, "follow");
  parser.AddDuration("duration", &flags->duration, "duration");
  parser.AddIntList("hidden", &flags->hidden, "hidden");
  return parser;
}

TEST(ArgParserTest, ParsesBothSpellingsAndKeepsPositionalsInOrder) {
  Flags flags;
  ArgParser parser = MakeParser(&flags);
  ASSERT_OK_AND_ASSIGN(
      std::vector<std::string> positional,
      parser.Parse({"first", "--model", "m", "--epochs=3", "second", "--lr", "0.5",
                    "--no-batchnorm", "--follow", "--hidden", "50,40", "--duration", "250ms"}));
  EXPECT_THAT(positional, ElementsAre("first", "second"));
  EXPECT_EQ(flags.model, "m");
  EXPECT_EQ(flags.epochs, 3);
  EXPECT_DOUBLE_EQ(flags.lr, 0.5);
  EXPECT_FALSE(flags.batchnorm);
  EXPECT_TRUE(flags.follow);
  EXPECT_THAT(flags.hidden, ElementsAre(50, 40));
  EXPECT_EQ(flags.duration, absl::Milliseconds(250));
  EXPECT_TRUE(parser.IsSet("lr"));
  EXPECT_TRUE(parser.IsSet("batchnorm"));
}

TEST(ArgParserTest, UnsetFlagsKeepTheirDefaults) {
  Flags flags;
  ArgParser parser = MakeParser(&flags);
  ASSERT_OK(parser.Parse({"--duration", "2"}).status());
  EXPECT_EQ(flags.duration, absl::Seconds(2));
  EXPECT_EQ(flags.epochs, 20);
  EXPECT_TRUE(flags.batchnorm);
  EXPECT_FALSE(parser.IsSet("epochs"));
}

TEST(ArgParserTest, RejectsBadInput) {
  Flags flags;
  ArgParser parser = MakeParser(&flags);
  EXPECT_THAT(parser.Parse({"--nope"}), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(parser.Parse({"--epochs", "x"}), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(parser.Parse({"--epochs"}), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(parser.Parse({"--hidden", "10,0"}), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(parser.Parse({"--hidden", "10,,2"}), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(parser.Parse({"--duration", "soon"}),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(parser.Parse({"--no-model"}), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(parser.Parse({"--follow=maybe"}), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(ArgParserTest, NegativeNumbersAreValuesAndDoubleDashEndsFlags) {
  Flags flags;
  ArgParser parser = MakeParser(&flags);
  ASSERT_OK_AND_ASSIGN(std::vector<std::string> positional,
                       parser.Parse({"--lr", "-0.5", "-3", "--", "--model"}));
  EXPECT_DOUBLE_EQ(flags.lr, -0.5);
  EXPECT_THAT(positional, ElementsAre("-3", "--model"));
  EXPECT_TRUE(flags.model.empty());
}

TEST(ArgParserTest, ParseLeadingStopsAtTheSubcommand) {
  Flags flags;
  ArgParser parser = MakeParser(&flags);
  ASSERT_OK_AND_ASSIGN(std::vector<std::string> rest,
                       parser.ParseLeading({"--model", "m", "jobs", "list", "--epochs", "2"}));
  EXPECT_EQ(flags.model, "m");
  EXPECT_THAT(rest, ElementsAre("jobs", "list", "--epochs", "2"));
  EXPECT_EQ(flags.epochs, 20);
}

TEST(ArgParserTest, HelpListsEveryFlag) {
  Flags flags;
  ArgParser parser = MakeParser(&flags);
  const std::string help = parser.Help();
  for (const char* flag : {"--model", "--epochs", "--lr", "--[no-]batchnorm", "--duration",
                           "--hidden"}) {
    EXPECT_THAT(help, HasSubstr(flag));
  }
}

}  // namespace
}  // namespace bnserve
