#pragma once
// Σ exp(values[i] - shift) in double, for shift >= every value (their maximum): the normaliser of a
// log-softmax over a vocabulary row, which the sampler computes for every token's logprob (100,352
// exponentials per token on DBRX).
//
// On CPUs with AVX2+FMA (checked at run time) four exponentials at a time: a Cody-Waite
// reduction by ln 2 and a degree-13 Taylor polynomial, within a few units in the last place of
// std::exp in double, summed in four partial sums; elsewhere std::exp one at a time. Either way
// the result agrees with the sum of std::exp to ~1e-15 relative, far below the float precision
// of a logprob. exp(-inf) is 0 and a NaN value makes the sum NaN, as with std::exp.
//
// Thread safety: pure function.

#include <span>

namespace sluice::inference::detail {

double sum_exp(std::span<const float> values, double shift);

// The std::exp loop, always available (tests compare the two).
double sum_exp_portable(std::span<const float> values, double shift);

}  // namespace sluice::inference::detail
