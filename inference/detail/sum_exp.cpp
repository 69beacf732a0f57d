#include "inference/detail/sum_exp.h"

#include <cmath>
#include <cstddef>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define SLUICE_SUM_EXP_AVX2 1
#endif

namespace sluice::inference::detail {

double sum_exp_portable(std::span<const float> values, double shift) {
    double sum = 0;
    for (float value : values) {
        sum += std::exp(static_cast<double>(value) - shift);
    }
    return sum;
}

#if SLUICE_SUM_EXP_AVX2
namespace {

// exp(x) for four doubles x <= 0 (or NaN). x = n ln2 + r with |r| <= ln2 / 2, ln2 split in a
// high part exact in 32 bits and a low part (Cody-Waite), so n ln2 is subtracted without
// rounding; e^r by Taylor to r^13 (the next term is below 5e-18 of the result); 2^n built in
// the exponent bits. Below -708 the result is 0 (it would be at most 2^-1021, nothing next to
// a sum that holds exp(0) = 1).
__attribute__((target("avx2,fma"))) __m256d exp_nonpositive(__m256d x) {
    const __m256d kMin = _mm256_set1_pd(-708.0);
    const __m256d kLog2e = _mm256_set1_pd(1.4426950408889634);
    const __m256d kLn2Hi = _mm256_set1_pd(6.93145751953125e-1);
    const __m256d kLn2Lo = _mm256_set1_pd(1.42860682030941723212e-6);
    const __m256d too_small = _mm256_cmp_pd(x, kMin, _CMP_LT_OQ);
    const __m256d nan = _mm256_cmp_pd(x, x, _CMP_UNORD_Q);
    const __m256d clamped = _mm256_max_pd(x, kMin);  // NaN lanes become -708 here
    const __m256d n = _mm256_round_pd(_mm256_mul_pd(clamped, kLog2e),
                                      _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256d r = _mm256_fnmadd_pd(n, kLn2Hi, clamped);
    r = _mm256_fnmadd_pd(n, kLn2Lo, r);
    // 1/k! for k = 13 .. 0, Horner from the highest degree.
    static constexpr double kInvFactorial[14] = {1.0 / 6227020800.0,
                                                 1.0 / 479001600.0,
                                                 1.0 / 39916800.0,
                                                 1.0 / 3628800.0,
                                                 1.0 / 362880.0,
                                                 1.0 / 40320.0,
                                                 1.0 / 5040.0,
                                                 1.0 / 720.0,
                                                 1.0 / 120.0,
                                                 1.0 / 24.0,
                                                 1.0 / 6.0,
                                                 1.0 / 2.0,
                                                 1.0,
                                                 1.0};
    __m256d p = _mm256_set1_pd(kInvFactorial[0]);
    for (int i = 1; i < 14; ++i) {
        p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(kInvFactorial[i]));
    }
    // n in [-1022, 0]: 2^n = (n + 1023) << 52 as the bits of a double.
    const __m256i biased =
        _mm256_add_epi64(_mm256_cvtepi32_epi64(_mm256_cvtpd_epi32(n)), _mm256_set1_epi64x(1023));
    const __m256d scale = _mm256_castsi256_pd(_mm256_slli_epi64(biased, 52));
    __m256d result = _mm256_mul_pd(p, scale);
    result = _mm256_andnot_pd(too_small, result);
    return _mm256_blendv_pd(result, x, nan);
}

__attribute__((target("avx2,fma"))) double sum_exp_avx2(const float* values, size_t n,
                                                        double shift) {
    const __m256d vshift = _mm256_set1_pd(shift);
    __m256d acc = _mm256_setzero_pd();
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const __m256d x = _mm256_sub_pd(_mm256_cvtps_pd(_mm_loadu_ps(values + i)), vshift);
        acc = _mm256_add_pd(acc, exp_nonpositive(x));
    }
    alignas(32) double lanes[4];
    _mm256_store_pd(lanes, acc);
    double sum = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
    for (; i < n; ++i) {
        sum += std::exp(static_cast<double>(values[i]) - shift);
    }
    return sum;
}

bool has_avx2() {
    static const bool yes = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    return yes;
}

}  // namespace
#endif

double sum_exp(std::span<const float> values, double shift) {
#if SLUICE_SUM_EXP_AVX2
    if (has_avx2()) {
        return sum_exp_avx2(values.data(), values.size(), shift);
    }
#endif
    return sum_exp_portable(values, shift);
}

}  // namespace sluice::inference::detail
