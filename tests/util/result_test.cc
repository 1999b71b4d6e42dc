// Result<T>: values that are not default-constructible or copyable, errors kept exactly,
// and the two misuses (an error made from a success code, value() of an error) abort with
// a message in every build type.
#include <gtest/gtest.h>

#include <cerrno>
#include <memory>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>

#include "uzram/result.h"

namespace uzram {
namespace {

struct NoDefault {
  explicit NoDefault(int v) : value(v) {}
  int value;
};
static_assert(!std::is_default_constructible_v<NoDefault>);

Result<NoDefault> make(bool ok) {
  if (!ok) return Errc::busy;
  return NoDefault(7);
}

TEST(ResultTest, ValueNeedNotBeDefaultConstructible) {
  Result<NoDefault> r = make(true);
  ASSERT_TRUE(r.has_value());
  EXPECT_TRUE(static_cast<bool>(r));
  EXPECT_EQ(r->value, 7);
  EXPECT_EQ((*r).value, 7);
  EXPECT_FALSE(r.error());
  const Result<NoDefault> e = make(false);
  ASSERT_FALSE(e.has_value());
  EXPECT_EQ(e.error(), Errc::busy);
  EXPECT_EQ(e.error(), std::errc::device_or_resource_busy);
  EXPECT_EQ(e.value_or(NoDefault(9)).value, 9);
  EXPECT_EQ(r.value_or(NoDefault(9)).value, 7);
  r = e;  // a value replaced by an error
  EXPECT_FALSE(r.has_value());
  EXPECT_EQ(r.error(), Errc::busy);
  r = make(true);
  EXPECT_EQ(r->value, 7);
  EXPECT_FALSE(r.error());
}

TEST(ResultTest, MoveOnlyValue) {
  Result<std::unique_ptr<std::string>> r = std::make_unique<std::string>("held");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(**r, "held");
  std::unique_ptr<std::string> taken = std::move(r).value();
  EXPECT_EQ(*taken, "held");
  Result<std::unique_ptr<std::string>> e = Errc::no_memory;
  EXPECT_EQ(std::move(e).value_or(nullptr), nullptr);
  Result<std::unique_ptr<std::string>> moved = std::move(r);
  EXPECT_TRUE(moved.has_value());
}

TEST(ResultTest, ForeignErrorCodesAreKept) {
  const std::error_code eio(EIO, std::generic_category());
  const Result<int> r = eio;
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error(), eio);
  EXPECT_EQ(r.error(), std::errc::io_error);
  EXPECT_EQ(r.value_or(-1), -1);
}

TEST(ResultTest, VoidTreatsTheSuccessCodeAsSuccess) {
  EXPECT_TRUE(Result<void>().has_value());
  EXPECT_TRUE(Result<void>(Errc::ok).has_value());
  EXPECT_TRUE(Result<void>(std::error_code()).has_value());
  const Result<void> e = Errc::io_error;
  EXPECT_FALSE(e.has_value());
  EXPECT_EQ(e.error(), Errc::io_error);
}

// Not a constant: clang refuses the literal Errc::ok at compile time (diagnose_if).
Errc success_at_run_time() {
  volatile int zero = 0;
  return static_cast<Errc>(zero);
}

TEST(ResultDeathTest, AnErrorFromASuccessCodeAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  const char* const message = "constructed as an error from a success code";
  EXPECT_DEATH((void)Result<int>(success_at_run_time()), message);
  EXPECT_DEATH((void)Result<NoDefault>(std::error_code()), message);
  // A zero code of any category is success too.
  EXPECT_DEATH((void)Result<int>(std::error_code(0, std::generic_category())), "success code");
}

TEST(ResultDeathTest, ValueOfAnErrorAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  const Result<NoDefault> e = Errc::busy;
  EXPECT_DEATH((void)e.value(), "value\\(\\) of an error result \\(uzram:4\\)");
  Result<int> i = std::error_code(EIO, std::generic_category());
  EXPECT_DEATH((void)*i, "value\\(\\) of an error result \\(generic:5\\)");
}

}  // namespace
}  // namespace uzram
