#include "pdf_facts.hpp"

#include <map>
#include <memory>

namespace kyso::formats::detail {
namespace {

// Thrown inside the reader for anything outside what it reads; read_plain_pdf returns nullopt.
struct Unsupported {};

bool is_space(char c) {
  return c == ' ' || c == '\n' || c == '\r' || c == '\t' || c == '\f' || c == '\0';
}
bool is_delimiter(char c) {
  return c == '(' || c == ')' || c == '<' || c == '>' || c == '[' || c == ']' || c == '{' ||
         c == '}' || c == '/' || c == '%';
}
bool is_regular(char c) {
  return !is_space(c) && !is_delimiter(c);
}
bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

struct Value {
  enum class Kind { Null, Bool, Int, Real, Name, String, Array, Dict, Ref };
  Kind kind = Kind::Null;
  std::size_t begin = 0;  // the value's text in the file
  std::size_t end = 0;
  long long number = 0;      // Int; Ref: the object number
  int gen = 0;               // Ref
  std::string bytes;         // Name: the raw name with '/'; String: the decoded bytes
  std::vector<Value> items;  // Array
  struct Entry;
  std::vector<Entry> dict;  // Dict

  /// The entry's value; nullptr when absent or null.
  [[nodiscard]] const Value* get(std::string_view key) const;
};

struct Value::Entry {
  std::string first;  // the key, raw, with its '/'
  Value second;
};

const Value* Value::get(std::string_view key) const {
  for (const auto& [k, v] : dict)
    if (k == key) return v.kind == Kind::Null ? nullptr : &v;
  return nullptr;
}

constexpr int kMaxDepth = 32;
constexpr std::size_t kMaxObjects = 100000;

class Reader {
 public:
  explicit Reader(std::string_view s) : s_(s) {}

  void skip_space(std::size_t& p) const {
    while (p < s_.size() && is_space(s_[p])) ++p;
    if (p < s_.size() && s_[p] == '%') throw Unsupported{};  // comments: qpdf's business
  }

  bool keyword_at(std::size_t p, std::string_view word) const {
    return s_.substr(p, word.size()) == word &&
           (p + word.size() == s_.size() || !is_regular(s_[p + word.size()]));
  }

  // Digits only (an object number, generation, offset or count).
  long long unsigned_at(std::size_t& p, std::size_t max_digits = 12) const {
    const std::size_t start = p;
    long long v = 0;
    while (p < s_.size() && is_digit(s_[p])) {
      if (p - start >= max_digits) throw Unsupported{};
      v = v * 10 + (s_[p] - '0');
      ++p;
    }
    if (p == start) throw Unsupported{};
    return v;
  }

  Value parse(std::size_t& p, int depth) const {
    if (depth > kMaxDepth) throw Unsupported{};
    skip_space(p);
    if (p >= s_.size()) throw Unsupported{};
    Value v;
    v.begin = p;
    const char c = s_[p];
    if (c == '/') {
      ++p;
      while (p < s_.size() && is_regular(s_[p])) ++p;
      v.kind = Value::Kind::Name;
      v.bytes = std::string(s_.substr(v.begin, p - v.begin));
    } else if (c == '(') {
      v.kind = Value::Kind::String;
      literal_string(p, v.bytes);
    } else if (c == '<' && p + 1 < s_.size() && s_[p + 1] == '<') {
      v.kind = Value::Kind::Dict;
      p += 2;
      for (;;) {
        skip_space(p);
        if (s_.substr(p, 2) == ">>") {
          p += 2;
          break;
        }
        Value key = parse(p, depth + 1);
        if (key.kind != Value::Kind::Name) throw Unsupported{};
        for (const auto& e : v.dict)
          if (e.first == key.bytes) throw Unsupported{};  // a repeated key
        Value item = parse(p, depth + 1);
        v.dict.push_back({std::move(key.bytes), std::move(item)});
      }
    } else if (c == '<') {
      v.kind = Value::Kind::String;
      ++p;
      int high = -1;
      for (;; ++p) {
        if (p >= s_.size()) throw Unsupported{};
        if (s_[p] == '>') break;
        if (is_space(s_[p])) continue;
        const int h = hex_value(s_[p]);
        if (h < 0) throw Unsupported{};
        if (high < 0) {
          high = h;
        } else {
          v.bytes += static_cast<char>(high * 16 + h);
          high = -1;
        }
      }
      if (high >= 0) v.bytes += static_cast<char>(high * 16);
      ++p;
    } else if (c == '[') {
      v.kind = Value::Kind::Array;
      ++p;
      for (;;) {
        skip_space(p);
        if (p < s_.size() && s_[p] == ']') {
          ++p;
          break;
        }
        v.items.push_back(parse(p, depth + 1));
      }
    } else if (is_digit(c) || c == '+' || c == '-' || c == '.') {
      std::size_t q = p;
      bool real = false;
      if (c == '+' || c == '-') ++q;
      const std::size_t digits = q;
      while (q < s_.size() && (is_digit(s_[q]) || s_[q] == '.')) {
        real = real || s_[q] == '.';
        ++q;
      }
      if (q == digits || (q < s_.size() && is_regular(s_[q]))) throw Unsupported{};
      if (real || c == '+' || c == '-' || q - p > 12) {
        v.kind = real ? Value::Kind::Real : Value::Kind::Int;  // not an object number
        v.number = -1;
        p = q;
      } else {
        std::size_t d = p;
        v.kind = Value::Kind::Int;
        v.number = unsigned_at(d);
        p = q;
        // "N G R": a reference.
        std::size_t r = p;
        while (r < s_.size() && is_space(s_[r])) ++r;
        std::size_t g = r;
        while (g < s_.size() && is_digit(s_[g])) ++g;
        std::size_t k = g;
        while (k < s_.size() && is_space(s_[k])) ++k;
        if (r > p && g > r && g - r <= 5 && k > g && keyword_at(k, "R")) {
          v.kind = Value::Kind::Ref;
          v.gen = static_cast<int>(unsigned_at(r, 5));
          p = k + 1;
        }
      }
    } else if (keyword_at(p, "true") || keyword_at(p, "false")) {
      v.kind = Value::Kind::Bool;
      p += s_[p] == 't' ? 4U : 5U;
    } else if (keyword_at(p, "null")) {
      v.kind = Value::Kind::Null;
      p += 4;
    } else {
      throw Unsupported{};
    }
    v.end = p;
    return v;
  }

  [[nodiscard]] std::string_view text(const Value& v) const {
    return s_.substr(v.begin, v.end - v.begin);
  }

 private:
  void literal_string(std::size_t& p, std::string& out) const {
    int depth = 0;
    for (++p;; ++p) {
      if (p >= s_.size()) throw Unsupported{};
      const char c = s_[p];
      if (c == '(') {
        ++depth;
      } else if (c == ')') {
        if (depth-- == 0) break;
      } else if (c == '\\') {
        if (++p >= s_.size()) throw Unsupported{};
        const char e = s_[p];
        if (e >= '0' && e <= '7') {
          int octal = 0;
          for (int i = 0; i < 3 && p < s_.size() && s_[p] >= '0' && s_[p] <= '7'; ++i, ++p)
            octal = octal * 8 + (s_[p] - '0');
          --p;
          out += static_cast<char>(octal & 0xFF);
          continue;
        }
        switch (e) {
          case 'n':
            out += '\n';
            break;
          case 'r':
            out += '\r';
            break;
          case 't':
            out += '\t';
            break;
          case 'b':
            out += '\b';
            break;
          case 'f':
            out += '\f';
            break;
          case '\r':
            if (p + 1 < s_.size() && s_[p + 1] == '\n') ++p;
            break;
          case '\n':
            break;
          default:
            out += e;
            break;
        }
        continue;
      }
      out += c;
    }
    ++p;
  }

  std::string_view s_;
};

// The PDF's objects through its cross-reference tables, newest section first.
class Objects {
 public:
  Objects(std::string_view pdf, const PdfSource& src) : s_(pdf), r_(pdf) {
    std::set<std::uint64_t> seen;
    for (std::uint64_t at = src.startxref;;) {
      if (at >= s_.size() || !seen.insert(at).second) throw Unsupported{};
      Value t = section(static_cast<std::size_t>(at));
      if (t.get("/XRefStm") != nullptr || t.get("/Encrypt") != nullptr) throw Unsupported{};
      const Value* prev = t.get("/Prev");
      const bool first = seen.size() == 1;
      if (first) trailer_ = std::move(t);
      if (prev == nullptr) break;
      if (prev->kind != Value::Kind::Int || prev->number < 0) throw Unsupported{};
      at = static_cast<std::uint64_t>(prev->number);
      if (seen.size() > 1000) throw Unsupported{};
    }
  }

  [[nodiscard]] const Value& trailer() const { return trailer_; }
  [[nodiscard]] const Reader& reader() const { return r_; }

  const Value& get(const Value& ref) {
    if (ref.kind != Value::Kind::Ref) throw Unsupported{};
    const auto num = static_cast<int>(ref.number);
    if (auto it = cache_.find(num); it != cache_.end()) {
      if (it->second.first != ref.gen) throw Unsupported{};
      return it->second.second;
    }
    const auto e = xref_.find(num);
    if (e == xref_.end() || !e->second.in_use || e->second.gen != ref.gen) throw Unsupported{};
    if (cache_.size() >= kMaxObjects) throw Unsupported{};
    std::size_t p = static_cast<std::size_t>(e->second.offset);
    if (p >= s_.size()) throw Unsupported{};
    if (r_.unsigned_at(p) != num || p >= s_.size() || !is_space(s_[p])) throw Unsupported{};
    r_.skip_space(p);
    if (r_.unsigned_at(p, 5) != ref.gen) throw Unsupported{};
    r_.skip_space(p);
    if (!r_.keyword_at(p, "obj")) throw Unsupported{};
    p += 3;
    Value v = r_.parse(p, 0);
    r_.skip_space(p);
    if (!r_.keyword_at(p, "endobj")) throw Unsupported{};  // a stream, or damage
    return cache_.emplace(num, std::make_pair(ref.gen, std::move(v))).first->second.second;
  }

  // A value, or the object a reference names.
  const Value& resolve(const Value& v) { return v.kind == Value::Kind::Ref ? get(v) : v; }

 private:
  struct Entry {
    std::uint64_t offset = 0;
    int gen = 0;
    bool in_use = false;
  };

  // One classic section ("xref", subsections, "trailer" and its dictionary); entries already
  // known from a newer section win.
  Value section(std::size_t p) {
    if (!r_.keyword_at(p, "xref")) throw Unsupported{};
    p += 4;
    for (;;) {
      r_.skip_space(p);
      if (r_.keyword_at(p, "trailer")) break;
      const long long first = r_.unsigned_at(p, 10);
      if (p >= s_.size() || s_[p] != ' ') throw Unsupported{};
      ++p;
      const long long count = r_.unsigned_at(p, 10);
      if (count > static_cast<long long>(s_.size() / 18) || first + count > 8388607)
        throw Unsupported{};
      for (long long i = 0; i < count; ++i) {
        r_.skip_space(p);
        const std::uint64_t offset = static_cast<std::uint64_t>(r_.unsigned_at(p, 10));
        if (p >= s_.size() || s_[p] != ' ') throw Unsupported{};
        ++p;
        const auto gen = static_cast<int>(r_.unsigned_at(p, 5));
        if (p + 1 >= s_.size() || s_[p] != ' ' || (s_[p + 1] != 'n' && s_[p + 1] != 'f'))
          throw Unsupported{};
        const bool in_use = s_[p + 1] == 'n';
        p += 2;
        if (p < s_.size() && !is_space(s_[p])) throw Unsupported{};
        const auto num = static_cast<int>(first + i);
        if (num != 0) xref_.emplace(num, Entry{offset, gen, in_use});
      }
    }
    p += 7;
    Value t = r_.parse(p, 0);
    if (t.kind != Value::Kind::Dict) throw Unsupported{};
    return t;
  }

  std::string_view s_;
  Reader r_;
  std::map<int, Entry> xref_;
  std::map<int, std::pair<int, Value>> cache_;
  Value trailer_;
};

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6U));
    out += static_cast<char>(0x80 | (cp & 0x3FU));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12U));
    out += static_cast<char>(0x80 | ((cp >> 6U) & 0x3FU));
    out += static_cast<char>(0x80 | (cp & 0x3FU));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18U));
    out += static_cast<char>(0x80 | ((cp >> 12U) & 0x3FU));
    out += static_cast<char>(0x80 | ((cp >> 6U) & 0x3FU));
    out += static_cast<char>(0x80 | (cp & 0x3FU));
  }
}

// A text string's UTF-8: UTF-16BE with its byte order mark, or ASCII (the other bytes of
// PDFDocEncoding are left to qpdf).
std::string text_utf8(const std::string& b) {
  if (b.size() >= 2 && static_cast<unsigned char>(b[0]) == 0xFE &&
      static_cast<unsigned char>(b[1]) == 0xFF) {
    if (b.size() % 2 != 0) throw Unsupported{};
    std::string out;
    for (std::size_t i = 2; i < b.size(); i += 2) {
      char32_t u = (char32_t{static_cast<unsigned char>(b[i])} << 8U) |
                   char32_t{static_cast<unsigned char>(b[i + 1])};
      if (u >= 0xD800 && u < 0xDC00) {
        if (i + 3 >= b.size()) throw Unsupported{};
        const char32_t lo = (char32_t{static_cast<unsigned char>(b[i + 2])} << 8U) |
                            char32_t{static_cast<unsigned char>(b[i + 3])};
        if (lo < 0xDC00 || lo >= 0xE000) throw Unsupported{};
        u = 0x10000 + ((u - 0xD800) << 10U) + (lo - 0xDC00);
        i += 2;
      } else if (u >= 0xDC00 && u < 0xE000) {
        throw Unsupported{};
      }
      append_utf8(out, u);
    }
    return out;
  }
  for (const char c : b)
    if (static_cast<unsigned char>(c) >= 0x80) throw Unsupported{};
  return b;
}

PdfDictText dict_text(const Reader& r, const Value& d) {
  PdfDictText out;
  out.reserve(d.dict.size());
  for (const auto& [k, v] : d.dict) {
    if (v.kind == Value::Kind::Null) continue;  // a null entry is an absent one
    out.emplace_back(k, std::string(r.text(v)));
  }
  return out;
}

std::string items_text(const Reader& r, const Value& a) {
  std::string out;
  for (const auto& item : a.items) {
    out += r.text(item);
    out += ' ';
  }
  return out;
}

// The page tree's leaves, depth first: the first one, and the count.
void walk_pages(Objects& objects, const Value& ref, std::set<int>& seen, int depth,
                const Value*& first, PdfObjRef& first_ref) {
  if (depth > kMaxDepth || ref.kind != Value::Kind::Ref ||
      !seen.insert(static_cast<int>(ref.number)).second)
    throw Unsupported{};
  const Value& node = objects.get(ref);
  if (node.kind != Value::Kind::Dict) throw Unsupported{};
  const Value* type = node.get("/Type");
  if (type == nullptr || type->kind != Value::Kind::Name) throw Unsupported{};
  if (type->bytes == "/Page") {
    if (first == nullptr) {
      first = &node;
      first_ref = {static_cast<int>(ref.number), ref.gen};
    }
    return;
  }
  if (type->bytes != "/Pages") throw Unsupported{};
  const Value* kids = node.get("/Kids");
  if (kids == nullptr || kids->kind != Value::Kind::Array) throw Unsupported{};
  for (const auto& kid : kids->items) walk_pages(objects, kid, seen, depth + 1, first, first_ref);
}

PdfFacts read(std::string_view pdf, const PdfSource& src) {
  Objects objects(pdf, src);
  const Reader& r = objects.reader();
  const Value& trailer = objects.trailer();
  PdfFacts f;
  const Value* size = trailer.get("/Size");
  const Value* root_ref = trailer.get("/Root");
  if (size == nullptr || size->kind != Value::Kind::Int || size->number <= 0 ||
      size->number > 8388607 || root_ref == nullptr || root_ref->kind != Value::Kind::Ref)
    throw Unsupported{};
  f.size = static_cast<int>(size->number);
  if (const Value* info = trailer.get("/Info")) f.info = r.text(*info);
  if (const Value* id = trailer.get("/ID")) f.id = r.text(*id);

  f.root = {static_cast<int>(root_ref->number), root_ref->gen};
  const Value& root = objects.get(*root_ref);
  if (root.kind != Value::Kind::Dict) throw Unsupported{};
  f.root_dict = dict_text(r, root);

  const Value* pages = root.get("/Pages");
  if (pages == nullptr) throw Unsupported{};
  std::set<int> seen;
  const Value* page = nullptr;
  walk_pages(objects, *pages, seen, 0, page, f.page);
  if (page == nullptr) throw Unsupported{};  // no pages: qpdf's error
  f.page_dict = dict_text(r, *page);
  if (const Value* annots = page->get("/Annots")) {
    const Value& a = objects.resolve(*annots);
    if (a.kind != Value::Kind::Array) throw Unsupported{};
    f.annots = items_text(r, a);
  }

  if (const Value* acro_entry = root.get("/AcroForm")) {
    const Value& acro = objects.resolve(*acro_entry);
    if (acro.kind != Value::Kind::Dict) throw Unsupported{};
    f.acro_form = true;
    if (acro_entry->kind == Value::Kind::Ref) {
      f.acro_indirect = true;
      f.acro = {static_cast<int>(acro_entry->number), acro_entry->gen};
    }
    f.acro_dict = dict_text(r, acro);
    if (const Value* fields_entry = acro.get("/Fields")) {
      const Value& fields = objects.resolve(*fields_entry);
      if (fields.kind != Value::Kind::Array) throw Unsupported{};
      f.fields = items_text(r, fields);
      for (const auto& item : fields.items) {
        const Value& field = objects.resolve(item);
        if (field.kind != Value::Kind::Dict) continue;
        const Value* t = field.get("/T");
        if (t != nullptr && t->kind == Value::Kind::String)
          f.field_names.insert(text_utf8(t->bytes));
      }
    }
  }
  return f;
}

}  // namespace

std::string ref_text(const PdfObjRef& r) {
  return std::to_string(r.num) + " " + std::to_string(r.gen) + " R";
}

std::optional<PdfFacts> read_plain_pdf(std::string_view pdf, const PdfSource& src) {
  if (src.xref_stream || src.size != pdf.size()) return std::nullopt;
  try {
    return read(pdf, src);
  } catch (const Unsupported&) {
    return std::nullopt;
  }
}

}  // namespace kyso::formats::detail
