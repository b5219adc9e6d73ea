#include "model/decimal.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <random>
#include <string>

namespace pushhook::model {
namespace {

std::string Decimal(std::string_view literal, size_t max_bytes = 64) {
  return DecimalString(literal, max_bytes).value_or("<none>");
}

TEST(DecimalStringTest, IsThePlainPositionalFormOfTheLiteral) {
  const struct {
    const char* literal;
    const char* decimal;
  } cases[] = {
      // Integers keep their digits, however many.
      {"0", "0"},
      {"42", "42"},
      {"-7", "-7"},
      {"123456789012345678901234567890", "123456789012345678901234567890"},
      // Fractions lose only their trailing zeros.
      {"1.5", "1.5"},
      {"1.50", "1.5"},
      {"1.0", "1"},
      {"-0.025", "-0.025"},
      {"100.000", "100"},
      // Exponents move the point.
      {"1e3", "1000"},
      {"1E+3", "1000"},
      {"1.25e1", "12.5"},
      {"25e-3", "0.025"},
      {"-1.5e-1", "-0.15"},
      {"0.0012e4", "12"},
      // Zero has no sign, whatever its form.
      {"-0", "0"},
      {"-0.0", "0"},
      {"0e999999999999999999999", "0"},
      {"0.000e-5", "0"},
  };
  for (const auto& c : cases) EXPECT_EQ(Decimal(c.literal), c.decimal) << c.literal;
}

TEST(DecimalStringTest, RefusesWhatWouldBeTooLongBeforeBuildingIt) {
  EXPECT_EQ(Decimal("1234", 4), "1234");
  EXPECT_EQ(Decimal("-1234", 4), "<none>");
  EXPECT_EQ(Decimal("1e3", 3), "<none>");
  EXPECT_EQ(Decimal("1e-2", 4), "0.01");
  EXPECT_EQ(Decimal("1e-3", 4), "<none>");
  EXPECT_EQ(Decimal("1e999999999999999999999"), "<none>");
  EXPECT_EQ(Decimal("1e-999999999999999999999"), "<none>");
}

TEST(DecimalStringTest, RefusesWhatIsNotAJsonNumber) {
  for (const char* bad : {"", "-", "+1", "01", "-01", "1.", ".5", "1e", "1e+", "0x10", "1 ", "NaN",
                          "Infinity", "1.5.2", "1e5e5"}) {
    EXPECT_EQ(Decimal(bad), "<none>") << bad;
  }
}

TEST(DecimalStringTest, NamesTheSameNumberAsTheLiteral) {
  // Literals of every shape from a fixed seed: each decimal string reads back (strtod) as the
  // same double as the literal it came from, and is already in its own canonical form.
  std::mt19937 random(20261207);
  const auto digits = [&](int n, bool leading_zero_allowed) {
    std::string out;
    for (int i = 0; i < n; ++i) {
      const int lowest = (i == 0 && !leading_zero_allowed) ? 1 : 0;
      out += static_cast<char>('0' + std::uniform_int_distribution<int>(lowest, 9)(random));
    }
    return out;
  };
  for (int i = 0; i < 5000; ++i) {
    std::string literal = random() % 3 == 0 ? "-" : "";
    literal += random() % 4 == 0 ? "0" : digits(1 + static_cast<int>(random() % 12), false);
    if (random() % 2 == 0) literal += "." + digits(1 + static_cast<int>(random() % 8), true);
    if (random() % 2 == 0) {
      literal += random() % 2 == 0 ? "e" : "E";
      if (random() % 3 == 0) literal += random() % 2 == 0 ? "-" : "+";
      literal += std::to_string(random() % 25);
    }
    const std::optional<std::string> decimal = DecimalString(literal, 64);
    ASSERT_TRUE(decimal.has_value()) << literal;
    EXPECT_EQ(std::strtod(decimal->c_str(), nullptr), std::strtod(literal.c_str(), nullptr))
        << literal << " -> " << *decimal;
    EXPECT_EQ(DecimalString(*decimal, 64), decimal) << literal;
  }
}

}  // namespace
}  // namespace pushhook::model
