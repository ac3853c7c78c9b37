#ifndef CHIVEFUZZ_H
#define CHIVEFUZZ_H

#include <stddef.h>
#include <stdint.h>

/// libFuzzer's driver for a program that has its own main (compiler-rt: lib/fuzzer/FuzzerInterface.h). SwiftPM
/// gives every executable a main of its own, so the fuzz targets start libFuzzer through this instead of
/// libFuzzer's main.
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));

/// Runs libFuzzer with the program's arguments and `callback` as the target; returns its exit status.
int CHiveFuzz_run(int argc, char **argv, int (*callback)(const uint8_t *data, size_t size));

#endif
