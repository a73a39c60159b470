#include "npy.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>

#include "protocol_fields.hpp"

namespace aiot {

namespace {

constexpr DType kAllDTypes[] = {DType::kFloat32, DType::kFloat16, DType::kInt64,
                                DType::kInt32,   DType::kUInt8,   DType::kBool};

// Elements are read and written through memcpy: a caller's buffer need not be aligned to
// its type (a row of a mapped file, a framework's packed buffer).
template <typename T>
T load(const void* base, size_t index) {
  T value;
  std::memcpy(&value, static_cast<const unsigned char*>(base) + index * sizeof(T), sizeof(T));
  return value;
}

template <typename T>
void store(void* base, size_t index, T value) {
  std::memcpy(static_cast<unsigned char*>(base) + index * sizeof(T), &value, sizeof(T));
}

float half_to_float(uint16_t half) {
  const uint32_t sign = static_cast<uint32_t>(half & 0x8000u) << 16;
  const uint32_t exponent = (half >> 10) & 0x1fu;
  const uint32_t mantissa = half & 0x3ffu;
  if (exponent == 0) {  // zero or subnormal: mantissa * 2^-24
    const float magnitude = std::ldexp(static_cast<float>(mantissa), -24);
    return sign ? -magnitude : magnitude;
  }
  uint32_t bits;
  if (exponent == 0x1f) {
    bits = sign | 0x7f800000u | (mantissa << 13);  // infinity or NaN (payload kept)
  } else {
    bits = sign | ((exponent + 112) << 23) | (mantissa << 13);  // rebias 15 -> 127
  }
  float value;
  std::memcpy(&value, &bits, sizeof value);
  return value;
}

// Rounded to nearest, ties to even, as numpy's astype(float16) does.
uint16_t float_to_half(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  const auto sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
  const uint32_t magnitude = bits & 0x7fffffffu;
  if (magnitude > 0x7f800000u) return sign | 0x7e00u;  // NaN
  if (magnitude >= 0x477ff000u) return sign | 0x7c00u;  // 65520 and up round to infinity
  if (magnitude < 0x38800000u) {
    // Below half's smallest normal (2^-14): a subnormal, counted in steps of 2^-24. The
    // scaling is exact; nearbyint rounds ties to even. 1024 steps is the smallest normal,
    // whose encoding is the same number.
    float steps = std::fabs(value) * 16777216.0f;
    return sign | static_cast<uint16_t>(std::nearbyint(steps));
  }
  uint32_t rebased = magnitude - 0x38000000u;  // exponent 127 -> 15 bias
  rebased += 0x0fffu + ((rebased >> 13) & 1u);  // round the 13 dropped bits, ties to even
  return sign | static_cast<uint16_t>(rebased >> 13);
}

bool is_float(DType dtype) { return dtype == DType::kFloat32 || dtype == DType::kFloat16; }

// An integer or bool element as int64 (uint8 and bool are one byte, read alike).
template <typename From>
void convert_integers(const void* source, DType to, void* destination, size_t count) {
  int64_t lowest = 0;
  int64_t highest = 1;  // bool
  if (to == DType::kInt64) {
    lowest = std::numeric_limits<int64_t>::min();
    highest = std::numeric_limits<int64_t>::max();
  } else if (to == DType::kInt32) {
    lowest = std::numeric_limits<int32_t>::min();
    highest = std::numeric_limits<int32_t>::max();
  } else if (to == DType::kUInt8) {
    highest = 255;
  }
  for (size_t i = 0; i < count; ++i) {
    const auto value = static_cast<int64_t>(load<From>(source, i));
    if (value < lowest || value > highest) {
      throw std::range_error("value " + std::to_string(value) + " at element " +
                             std::to_string(i) + " does not fit " + dtype_name(to));
    }
    switch (to) {
      case DType::kInt64: store<int64_t>(destination, i, value); break;
      case DType::kInt32: store<int32_t>(destination, i, static_cast<int32_t>(value)); break;
      default: store<uint8_t>(destination, i, static_cast<uint8_t>(value)); break;
    }
  }
}

}  // namespace

const char* dtype_name(DType dtype) {
  namespace name = protocol::dtype;
  switch (dtype) {
    case DType::kFloat32: return name::float32;
    case DType::kFloat16: return name::float16;
    case DType::kInt64: return name::int64;
    case DType::kInt32: return name::int32;
    case DType::kUInt8: return name::uint8;
    case DType::kBool: return name::bool_;
  }
  return "?";
}

size_t dtype_bytes(DType dtype) {
  switch (dtype) {
    case DType::kFloat32: return 4;
    case DType::kFloat16: return 2;
    case DType::kInt64: return 8;
    case DType::kInt32: return 4;
    case DType::kUInt8: return 1;
    case DType::kBool: return 1;
  }
  return 0;
}

std::optional<DType> dtype_named(const std::string& name) {
  for (DType dtype : kAllDTypes) {
    if (name == dtype_name(dtype)) return dtype;
  }
  return std::nullopt;
}

std::string dtype_names() {
  std::string names;
  for (DType dtype : kAllDTypes) {
    names += (names.empty() ? "" : ", ") + std::string(dtype_name(dtype));
  }
  return names;
}

bool can_convert(DType from, DType to) { return from == to || is_float(from) == is_float(to); }

void convert_elements(DType from, const void* source, DType to, void* destination,
                      size_t count) {
  if (count == 0) return;  // a buffer of nothing may be null, which memcpy must not see
  if (from == to) {
    std::memcpy(destination, source, count * dtype_bytes(from));
    return;
  }
  if (!can_convert(from, to)) {
    throw std::invalid_argument(std::string("cannot convert ") + dtype_name(from) + " to " +
                                dtype_name(to));
  }
  switch (from) {
    case DType::kFloat32:  // to float16
      for (size_t i = 0; i < count; ++i)
        store<uint16_t>(destination, i, float_to_half(load<float>(source, i)));
      return;
    case DType::kFloat16:  // to float32
      for (size_t i = 0; i < count; ++i)
        store<float>(destination, i, half_to_float(load<uint16_t>(source, i)));
      return;
    case DType::kInt64: convert_integers<int64_t>(source, to, destination, count); return;
    case DType::kInt32: convert_integers<int32_t>(source, to, destination, count); return;
    case DType::kUInt8:
    case DType::kBool: convert_integers<uint8_t>(source, to, destination, count); return;
  }
}

void to_float(DType from, const void* source, size_t count, float* destination) {
  if (count == 0) return;
  switch (from) {
    case DType::kFloat32:
      std::memcpy(destination, source, count * sizeof(float));
      return;
    case DType::kFloat16:
      for (size_t i = 0; i < count; ++i) destination[i] = half_to_float(load<uint16_t>(source, i));
      return;
    case DType::kInt64:
      for (size_t i = 0; i < count; ++i)
        destination[i] = static_cast<float>(load<int64_t>(source, i));
      return;
    case DType::kInt32:
      for (size_t i = 0; i < count; ++i)
        destination[i] = static_cast<float>(load<int32_t>(source, i));
      return;
    case DType::kUInt8:
    case DType::kBool:
      for (size_t i = 0; i < count; ++i)
        destination[i] = static_cast<float>(load<uint8_t>(source, i));
      return;
  }
}

namespace {

std::string header_value(const std::string& header, const std::string& key,
                         const std::string& path) {
  size_t at = header.find("'" + key + "'");
  if (at == std::string::npos) throw std::runtime_error(path + ": .npy header lacks " + key);
  at = header.find(':', at);
  size_t end = key == "shape" ? header.find(')', at) + 1 : header.find_first_of(",}", at);
  std::string value = header.substr(at + 1, end - at - 1);
  size_t first = value.find_first_not_of(" '");
  size_t last = value.find_last_not_of(" '");
  return first == std::string::npos ? "" : value.substr(first, last - first + 1);
}

// numpy's descr of each DType as np.save writes it on a little-endian machine ('|' for one
// byte, '<' accepted too).
std::optional<DType> dtype_of_descr(const std::string& descr) {
  if (descr == "<f4") return DType::kFloat32;
  if (descr == "<f2") return DType::kFloat16;
  if (descr == "<i8") return DType::kInt64;
  if (descr == "<i4") return DType::kInt32;
  if (descr == "|u1" || descr == "<u1") return DType::kUInt8;
  if (descr == "|b1" || descr == "<b1") return DType::kBool;
  return std::nullopt;
}

}  // namespace

NpyArray::NpyArray(const std::string& path) : path_(path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) throw std::runtime_error("cannot open " + path + ": " + std::strerror(errno));
  struct stat info {};
  ::fstat(fd, &info);
  mapping_bytes_ = static_cast<size_t>(info.st_size);
  if (mapping_bytes_ < 10) {
    ::close(fd);
    throw std::runtime_error(path + ": not a .npy file (too short)");
  }
  mapping_ = ::mmap(nullptr, mapping_bytes_, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (mapping_ == MAP_FAILED) {
    mapping_ = nullptr;
    throw std::runtime_error("cannot map " + path + ": " + std::strerror(errno));
  }
  // A constructor that throws runs no destructor: the mapping is released here.
  try {
    const auto* bytes = static_cast<const unsigned char*>(mapping_);
    if (std::memcmp(bytes, "\x93NUMPY", 6) != 0)
      throw std::runtime_error(path + ": not a .npy file");
    size_t header_len, offset;
    if (bytes[6] == 1) {
      header_len = bytes[8] | (bytes[9] << 8);
      offset = 10;
    } else {
      header_len = bytes[8] | (bytes[9] << 8) | (bytes[10] << 16) | (size_t(bytes[11]) << 24);
      offset = 12;
    }
    if (offset + header_len > mapping_bytes_)
      throw std::runtime_error(path + ": truncated header");
    std::string header(reinterpret_cast<const char*>(bytes + offset), header_len);
    descr_ = header_value(header, "descr", path);
    const std::optional<DType> dtype = dtype_of_descr(descr_);
    if (!dtype) {
      throw std::runtime_error(path + ": dtype '" + descr_ +
                               "', which the runner does not read (it reads <f4 float32, <f2 "
                               "float16, <i8 int64, <i4 int32, |u1 uint8, |b1 bool)");
    }
    dtype_ = *dtype;
    if (header_value(header, "fortran_order", path) != "False")
      throw std::runtime_error(path + ": Fortran order, the runner reads C order");
    std::string shape = header_value(header, "shape", path);
    size_t count = 1;
    for (size_t i = 0; i < shape.size();) {
      if (shape[i] >= '0' && shape[i] <= '9') {
        size_t used = 0;
        int64_t dim = std::stoll(shape.substr(i), &used);
        shape_.push_back(dim);
        count *= static_cast<size_t>(dim);
        i += used;
      } else {
        ++i;
      }
    }
    data_ = bytes + offset + header_len;
    if (offset + header_len + count * dtype_bytes(dtype_) > mapping_bytes_)
      throw std::runtime_error(path + ": truncated data (" + std::to_string(count) + " " +
                               dtype_name(dtype_) + " values expected)");
  } catch (...) {
    ::munmap(mapping_, mapping_bytes_);
    mapping_ = nullptr;
    throw;
  }
}

NpyArray::~NpyArray() {
  if (mapping_ != nullptr) ::munmap(mapping_, mapping_bytes_);
}

std::vector<int64_t> NpyArray::row_shape() const {
  std::vector<int64_t> shape = shape_;
  if (!shape.empty()) shape[0] = 1;
  return shape;
}

size_t NpyArray::row_elements() const {
  size_t size = 1;
  for (size_t i = 1; i < shape_.size(); ++i) size *= static_cast<size_t>(shape_[i]);
  return size;
}

const void* NpyArray::row(int64_t index) const {
  if (index < 0 || index >= rows()) throw std::out_of_range("row index out of range");
  return data_ + static_cast<size_t>(index) * row_bytes();
}

}  // namespace aiot
