// The destructor qpdf_cxx20.hpp declares (clang builds only): the elements, as the generic one
// does; the storage goes with the vector's base as always. Kept in the object file although
// nothing here calls it (a declared-only inline function is called out of line elsewhere).
#include <qpdf/JSON.hh>

#include <memory>

template <>
[[gnu::used]] constexpr std::vector<JSON>::~vector() noexcept {
  std::destroy(begin(), end());
}
