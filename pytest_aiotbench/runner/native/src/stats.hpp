// The stopping rule's statistics, the same as the Python runner's (aiot_runner.py):
// a distribution-free confidence interval of the median from order statistics.
#pragma once

#include <utility>
#include <vector>

namespace aiot {

// Inverse of the standard normal CDF (Acklam's rational approximation, |err| < 1e-9).
double normal_quantile(double p);
// 0-based inclusive ranks of the order statistics that bound the median.
std::pair<long, long> median_confidence_bounds(long n, double confidence);
double median_of_sorted(const std::vector<double>& ordered);
// Half the interval's width as a fraction of the median (infinity for a zero median).
double median_relative_half_width(std::vector<double> samples, double confidence);

}  // namespace aiot
