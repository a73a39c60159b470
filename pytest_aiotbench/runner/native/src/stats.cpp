#include "stats.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

namespace aiot {

double normal_quantile(double p) {
  static const double a[] = {-3.969683028665376e01, 2.209460984245205e02,
                             -2.759285104469687e02, 1.383577518672690e02,
                             -3.066479806614716e01, 2.506628277459239e00};
  static const double b[] = {-5.447609879822406e01, 1.615858368580409e02,
                             -1.556989798598866e02, 6.680131188771972e01,
                             -1.328068155288572e01};
  static const double c[] = {-7.784894002430293e-03, -3.223964580411365e-01,
                             -2.400758277161838e00, -2.549732539343734e00,
                             4.374664141464968e00, 2.938163982698783e00};
  static const double d[] = {7.784695709041462e-03, 3.224671290700398e-01,
                             2.445134137142996e00, 3.754408661907416e00};
  if (!(p > 0 && p < 1)) throw std::invalid_argument("p must lie in (0, 1)");
  const double low = 0.02425;
  if (p < low) {
    double q = std::sqrt(-2 * std::log(p));
    return (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
           ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  }
  if (p > 1 - low) return -normal_quantile(1 - p);
  double q = p - 0.5;
  double r = q * q;
  return (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
         (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
}

std::pair<long, long> median_confidence_bounds(long n, double confidence) {
  if (n < 1) throw std::invalid_argument("need at least one sample");
  // The count of samples below the true median is Binomial(n, 1/2).
  double z = normal_quantile(0.5 + confidence / 2);
  double half_width = z * std::sqrt(static_cast<double>(n)) / 2;
  long lower = std::max(0L, static_cast<long>(std::floor(n / 2.0 - half_width)) - 1);
  long upper = std::min(n - 1, static_cast<long>(std::ceil(n / 2.0 + half_width)));
  return {lower, upper};
}

double median_of_sorted(const std::vector<double>& ordered) {
  size_t n = ordered.size();
  size_t mid = n / 2;
  return n % 2 ? ordered[mid] : (ordered[mid - 1] + ordered[mid]) / 2;
}

double median_relative_half_width(std::vector<double> samples, double confidence) {
  std::sort(samples.begin(), samples.end());
  auto bounds = median_confidence_bounds(static_cast<long>(samples.size()), confidence);
  double median = median_of_sorted(samples);
  if (median <= 0) return std::numeric_limits<double>::infinity();
  return (samples[bounds.second] - samples[bounds.first]) / 2 / median;
}

}  // namespace aiot
