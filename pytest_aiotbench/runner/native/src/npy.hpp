// Typed tensor data: the element types the protocol names (its enum dtype), conversion
// between them, and the .npy files the host writes them in (numpy, C order, little-endian).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace aiot {

// The protocol's enum dtype: what a tensor file holds, and the element types a backend feeds
// and reads. Backends map their framework's own type onto it.
enum class DType { kFloat32, kFloat16, kInt64, kInt32, kUInt8, kBool };

const char* dtype_name(DType dtype);  // the protocol's name: "float32", ...
size_t dtype_bytes(DType dtype);
std::optional<DType> dtype_named(const std::string& name);
// Every name, for messages: "float32, float16, int64, int32, uint8, bool".
std::string dtype_names();

// Whether a tensor given as `from` can be fed to an input declared as `to`: floats among
// floats, integers and bools among themselves (values checked on the copy). Never between
// floats and integers: that would silently change what the model sees.
bool can_convert(DType from, DType to);

// Copies `count` elements, converting from `from` to `to` (can_convert(from, to) must hold).
// Throws std::range_error naming the first value that does not fit `to` (an int64 id beyond
// int32, a bool that is neither 0 nor 1).
void convert_elements(DType from, const void* source, DType to, void* destination,
                      size_t count);

// Writes `count` elements of `from` to `destination` as float (how outputs are answered).
void to_float(DType from, const void* source, size_t count, float* destination);

// A C-order little-endian array of one of the DTypes, memory-mapped: a large file of
// preprocessed images costs nothing until an image is read, as a JPEG on disk would.
class NpyArray {
 public:
  explicit NpyArray(const std::string& path);  // throws std::runtime_error naming the file
  ~NpyArray();
  NpyArray(const NpyArray&) = delete;
  NpyArray& operator=(const NpyArray&) = delete;

  const std::string& path() const { return path_; }
  DType dtype() const { return dtype_; }
  const std::string& descr() const { return descr_; }  // numpy's, as the header has it
  const std::vector<int64_t>& shape() const { return shape_; }
  // Rows along the first axis, and the shape of one row with a batch axis of 1.
  int64_t rows() const { return shape_.empty() ? 0 : shape_[0]; }
  std::vector<int64_t> row_shape() const;
  size_t row_elements() const;
  size_t row_bytes() const { return row_elements() * dtype_bytes(dtype_); }
  const void* row(int64_t index) const;

 private:
  std::string path_;
  DType dtype_ = DType::kFloat32;
  std::string descr_;
  std::vector<int64_t> shape_;
  void* mapping_ = nullptr;
  size_t mapping_bytes_ = 0;
  const unsigned char* data_ = nullptr;
};

}  // namespace aiot
