// namespace.h — the namespace the kernels live in.
//
// The kernels are compiled once per instruction set (CMakeLists.txt). The Python package loads
// one of those builds per process, but the C++ library (liblstmfast) links all of them into one
// shared object and picks one at run time, so each build's symbols need their own name: every
// kernel sits in an inline namespace named after its instruction set (lstmfast::isa_avx2, …),
// which code inside one build still reaches as plain lstmfast::.
#pragma once

#ifndef LSTMFAST_ISA_NAMESPACE
#define LSTMFAST_ISA_NAMESPACE isa_default
#endif

#define LSTMFAST_NAMESPACE_BEGIN \
  namespace lstmfast {           \
  inline namespace LSTMFAST_ISA_NAMESPACE {
#define LSTMFAST_NAMESPACE_END \
  }                            \
  }
