// SDD_CLONES: one copy of a function per instruction set (AVX-512, AVX2 + FMA, baseline x86-64),
// picked at load time by GCC function multi-versioning; nothing elsewhere.
#pragma once

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define SDD_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define SDD_CLONES
#endif
