# Formats: CMS/CAdES, XML-DSig, PAdES, timestamps, pre-signing checks and `kyso verify`, on the
# fixture token, each signature checked by an independent tool (openssl cms, xmlsec1, pdfsig).
set(_fmt ${CMAKE_CURRENT_SOURCE_DIR}/formats)
kyso_add_tests(formats_tests TOKEN SOURCES
  ${_fmt}/format_support.cpp ${_fmt}/pdf_writer.cpp ${_fmt}/tsa_server.cpp
  ${_fmt}/test_cms.cpp ${_fmt}/test_xml.cpp ${_fmt}/test_pdf.cpp ${_fmt}/test_checks.cpp ${_fmt}/test_verify.cpp ${_fmt}/test_longterm.cpp ${_fmt}/test_prepare.cpp
  DEPS kyso::formats kyso::pkcs11)
# pdf_facts.hpp: the plain-PDF reader is tested against what qpdf reads.
target_include_directories(formats_tests PRIVATE ${_fmt} ${PROJECT_SOURCE_DIR}/formats/src)
target_compile_definitions(formats_tests PRIVATE KYSO_FORMATS_TEST_SRC="${_fmt}")
