#include "stats.h"

double mean(const int *values, int count) {
  long sum = 0;
  for (int i = 0; i < count; i++) sum += values[i];
  return count ? (double)sum / count : 0.0;
}
