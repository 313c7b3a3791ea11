#pragma once
#ifdef __cplusplus
extern "C" {
#endif
double mean(const int *values, int count);
#ifdef __cplusplus
}
#endif
