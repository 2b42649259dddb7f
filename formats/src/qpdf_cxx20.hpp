#pragma once
// Included first in every file of kyso::formats_documents by the clang build only (see
// formats/CMakeLists.txt). Debian 12's qpdf 11.3 JSON.hh holds a std::vector<JSON> inside JSON,
// where JSON is still incomplete, and defaults a virtual destructor there; clang instantiates
// libstdc++'s C++20 (constexpr) vector destructor at that point and fails (qpdf#942, fixed in
// qpdf 11.5). Declaring that one destructor as explicitly specialized keeps clang from
// instantiating it; qpdf_cxx20.cpp defines it once JSON is complete. GCC needs none of this.

#include <vector>

class JSON;
template <>
constexpr std::vector<JSON>::~vector() noexcept;
