#include <cstdio>
#include "greet.h"

#ifndef GREETING
#define GREETING "Hello"
#endif

void greet(const char *who) { std::printf("%s, %s!\n", GREETING, who); }
