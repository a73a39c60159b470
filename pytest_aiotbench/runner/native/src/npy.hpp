// Reading float32 .npy files (the host writes probes and preprocessed images with numpy).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace aiot {

// A C-order little-endian float32 array, memory-mapped: a large file of preprocessed
// images costs nothing until an image is read, as a JPEG on disk would.
class NpyArray {
 public:
  explicit NpyArray(const std::string& path);  // throws std::runtime_error naming the file
  ~NpyArray();
  NpyArray(const NpyArray&) = delete;
  NpyArray& operator=(const NpyArray&) = delete;

  const std::vector<int64_t>& shape() const { return shape_; }
  // Rows along the first axis, and the shape of one row with a batch axis of 1.
  int64_t rows() const { return shape_.empty() ? 0 : shape_[0]; }
  std::vector<int64_t> row_shape() const;
  size_t row_size() const;  // elements in one row
  const float* row(int64_t index) const;

 private:
  std::vector<int64_t> shape_;
  void* mapping_ = nullptr;
  size_t mapping_bytes_ = 0;
  const float* data_ = nullptr;
};

}  // namespace aiot
