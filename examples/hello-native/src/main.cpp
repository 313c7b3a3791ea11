#include <cstdio>
#include "version.h"
#include "stats.h"
#include <greet.h>

int main(int argc, char **argv) {
  greet(argc > 1 ? argv[1] : "world");
  int values[] = {3, 1, 4, 1, 5, 9, 2, 6};
  std::printf("mean of %d values: %.3f (hello-native %s)\n", 8, mean(values, 8), HELLO_VERSION);
  return 0;
}
