// A small JSON reader and writer: enough for the runner protocol, no dependencies.
#pragma once

#include <cstdint>
#include <map>
#include <ostream>
#include <string>
#include <vector>

namespace aiot {

class Json {
 public:
  enum class Type { Null, Bool, Number, String, Array, Object };

  Json() = default;
  static Json parse(const std::string& text);  // throws std::runtime_error with the offset

  Type type() const { return type_; }
  bool is_null() const { return type_ == Type::Null; }
  // Typed access; each throws std::runtime_error naming the expected type.
  bool boolean() const;
  double number() const;
  const std::string& string() const;
  const std::vector<Json>& array() const;
  // A missing key reads as null, so optional fields need no special case.
  const Json& operator[](const std::string& key) const;
  bool has(const std::string& key) const;

 private:
  friend class JsonParser;
  Type type_ = Type::Null;
  bool bool_ = false;
  double number_ = 0.0;
  std::string string_;
  std::vector<Json> array_;
  std::map<std::string, Json> object_;
};

// Streaming writer: the result is written as it is produced, samples and all.
class JsonWriter {
 public:
  explicit JsonWriter(std::ostream& out) : out_(out) {}
  JsonWriter& begin_object();
  JsonWriter& end_object();
  JsonWriter& begin_array();
  JsonWriter& end_array();
  JsonWriter& key(const std::string& name);
  JsonWriter& value(const std::string& text);
  JsonWriter& value(const char* text) { return value(std::string(text)); }
  JsonWriter& value(double number);
  JsonWriter& value(int64_t number);
  JsonWriter& value(int number) { return value(static_cast<int64_t>(number)); }
  JsonWriter& value(bool flag);
  JsonWriter& null();
  template <typename T>
  JsonWriter& array(const std::vector<T>& values) {
    begin_array();
    for (const auto& v : values) value(v);
    return end_array();
  }

 private:
  void separate();
  std::ostream& out_;
  std::vector<bool> first_;  // per open container: no comma before its first item yet
  bool after_key_ = false;
};

}  // namespace aiot
