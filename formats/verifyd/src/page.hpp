#pragma once
// The page, its script and style, and the report's JSON schema, compiled in (page.cpp is made
// by CMake from page/ and docs/schemas/).

#include <string_view>

namespace kyso::verifyd {

std::string_view page_html() noexcept;
std::string_view page_js() noexcept;
std::string_view page_css() noexcept;
std::string_view report_schema() noexcept;

}  // namespace kyso::verifyd
