#include "json.hpp"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>

namespace aiot {

namespace {
const Json kNull;

[[noreturn]] void type_error(const char* expected) {
  throw std::runtime_error(std::string("JSON value is not ") + expected);
}
}  // namespace

bool Json::boolean() const {
  if (type_ != Type::Bool) type_error("a boolean");
  return bool_;
}
double Json::number() const {
  if (type_ != Type::Number) type_error("a number");
  return number_;
}
const std::string& Json::string() const {
  if (type_ != Type::String) type_error("a string");
  return string_;
}
const std::vector<Json>& Json::array() const {
  if (type_ != Type::Array) type_error("an array");
  return array_;
}
const Json& Json::operator[](const std::string& key) const {
  if (type_ != Type::Object) type_error("an object");
  auto found = object_.find(key);
  return found == object_.end() ? kNull : found->second;
}
bool Json::has(const std::string& key) const {
  return type_ == Type::Object && object_.count(key) > 0;
}

class JsonParser {
 public:
  explicit JsonParser(const std::string& text) : text_(text) {}

  Json document() {
    Json value = parse_value();
    skip_space();
    if (pos_ != text_.size()) fail("trailing characters");
    return value;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw std::runtime_error("invalid JSON at offset " + std::to_string(pos_) + ": " + what);
  }
  void skip_space() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\n' ||
                                   text_[pos_] == '\r' || text_[pos_] == '\t'))
      ++pos_;
  }
  bool consume(const char* word) {
    size_t n = std::char_traits<char>::length(word);
    if (text_.compare(pos_, n, word) != 0) return false;
    pos_ += n;
    return true;
  }

  Json parse_value() {
    skip_space();
    if (pos_ >= text_.size()) fail("unexpected end");
    Json value;
    char c = text_[pos_];
    if (c == '{') {
      value.type_ = Json::Type::Object;
      ++pos_;
      skip_space();
      if (pos_ < text_.size() && text_[pos_] == '}') { ++pos_; return value; }
      while (true) {
        skip_space();
        if (pos_ >= text_.size() || text_[pos_] != '"') fail("expected a key");
        std::string key = parse_string();
        skip_space();
        if (pos_ >= text_.size() || text_[pos_++] != ':') fail("expected ':'");
        value.object_[key] = parse_value();
        skip_space();
        if (pos_ < text_.size() && text_[pos_] == ',') { ++pos_; continue; }
        if (pos_ < text_.size() && text_[pos_] == '}') { ++pos_; return value; }
        fail("expected ',' or '}'");
      }
    }
    if (c == '[') {
      value.type_ = Json::Type::Array;
      ++pos_;
      skip_space();
      if (pos_ < text_.size() && text_[pos_] == ']') { ++pos_; return value; }
      while (true) {
        value.array_.push_back(parse_value());
        skip_space();
        if (pos_ < text_.size() && text_[pos_] == ',') { ++pos_; continue; }
        if (pos_ < text_.size() && text_[pos_] == ']') { ++pos_; return value; }
        fail("expected ',' or ']'");
      }
    }
    if (c == '"') {
      value.type_ = Json::Type::String;
      value.string_ = parse_string();
      return value;
    }
    if (consume("true")) { value.type_ = Json::Type::Bool; value.bool_ = true; return value; }
    if (consume("false")) { value.type_ = Json::Type::Bool; return value; }
    if (consume("null")) return value;
    // Python's json writes these for non-finite floats.
    if (consume("NaN")) { value.type_ = Json::Type::Number; value.number_ = NAN; return value; }
    if (consume("Infinity")) { value.type_ = Json::Type::Number; value.number_ = INFINITY; return value; }
    if (consume("-Infinity")) { value.type_ = Json::Type::Number; value.number_ = -INFINITY; return value; }
    const char* start = text_.c_str() + pos_;
    char* end = nullptr;
    double number = std::strtod(start, &end);
    if (end == start) fail("unexpected character");
    pos_ += static_cast<size_t>(end - start);
    value.type_ = Json::Type::Number;
    value.number_ = number;
    return value;
  }

  std::string parse_string() {
    ++pos_;  // opening quote
    std::string out;
    while (pos_ < text_.size()) {
      char c = text_[pos_++];
      if (c == '"') return out;
      if (c != '\\') { out += c; continue; }
      if (pos_ >= text_.size()) break;
      char e = text_[pos_++];
      switch (e) {
        case '"': case '\\': case '/': out += e; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          if (pos_ + 4 > text_.size()) fail("short \\u escape");
          unsigned code = static_cast<unsigned>(std::stoul(text_.substr(pos_, 4), nullptr, 16));
          pos_ += 4;
          if (code >= 0xD800 && code < 0xDC00 && text_.compare(pos_, 2, "\\u") == 0) {
            unsigned low = static_cast<unsigned>(std::stoul(text_.substr(pos_ + 2, 4), nullptr, 16));
            pos_ += 6;
            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
          }
          append_utf8(out, code);
          break;
        }
        default: fail("bad escape");
      }
    }
    fail("unterminated string");
  }

  static void append_utf8(std::string& out, unsigned code) {
    if (code < 0x80) {
      out += static_cast<char>(code);
    } else if (code < 0x800) {
      out += static_cast<char>(0xC0 | (code >> 6));
      out += static_cast<char>(0x80 | (code & 0x3F));
    } else if (code < 0x10000) {
      out += static_cast<char>(0xE0 | (code >> 12));
      out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (code & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (code >> 18));
      out += static_cast<char>(0x80 | ((code >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (code & 0x3F));
    }
  }

  const std::string& text_;
  size_t pos_ = 0;
};

Json Json::parse(const std::string& text) { return JsonParser(text).document(); }

void JsonWriter::separate() {
  if (after_key_) {
    after_key_ = false;
    return;
  }
  if (!first_.empty()) {
    if (!first_.back()) out_ << ',';
    first_.back() = false;
  }
}

JsonWriter& JsonWriter::begin_object() {
  separate();
  out_ << '{';
  first_.push_back(true);
  return *this;
}
JsonWriter& JsonWriter::end_object() {
  out_ << '}';
  first_.pop_back();
  return *this;
}
JsonWriter& JsonWriter::begin_array() {
  separate();
  out_ << '[';
  first_.push_back(true);
  return *this;
}
JsonWriter& JsonWriter::end_array() {
  out_ << ']';
  first_.pop_back();
  return *this;
}
JsonWriter& JsonWriter::key(const std::string& name) {
  value(name);
  out_ << ':';
  after_key_ = true;
  return *this;
}
JsonWriter& JsonWriter::value(const std::string& text) {
  separate();
  out_ << '"';
  for (unsigned char c : text) {
    switch (c) {
      case '"': out_ << "\\\""; break;
      case '\\': out_ << "\\\\"; break;
      case '\n': out_ << "\\n"; break;
      case '\r': out_ << "\\r"; break;
      case '\t': out_ << "\\t"; break;
      default:
        if (c < 0x20) {
          char escaped[8];
          std::snprintf(escaped, sizeof escaped, "\\u%04x", c);
          out_ << escaped;
        } else {
          out_ << static_cast<char>(c);
        }
    }
  }
  out_ << '"';
  return *this;
}
JsonWriter& JsonWriter::value(double number) {
  separate();
  if (std::isnan(number)) {
    out_ << "NaN";
  } else if (std::isinf(number)) {
    out_ << (number > 0 ? "Infinity" : "-Infinity");
  } else {
    char text[32];  // round-trips a double exactly
    std::snprintf(text, sizeof text, "%.17g", number);
    out_ << text;
  }
  return *this;
}
JsonWriter& JsonWriter::value(int64_t number) {
  separate();
  out_ << number;
  return *this;
}
JsonWriter& JsonWriter::value(bool flag) {
  separate();
  out_ << (flag ? "true" : "false");
  return *this;
}
JsonWriter& JsonWriter::null() {
  separate();
  out_ << "null";
  return *this;
}

}  // namespace aiot
