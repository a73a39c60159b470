#include "npy.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <stdexcept>

namespace aiot {

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

}  // namespace

NpyArray::NpyArray(const std::string& path) {
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
  const auto* bytes = static_cast<const unsigned char*>(mapping_);
  if (std::memcmp(bytes, "\x93NUMPY", 6) != 0) throw std::runtime_error(path + ": not a .npy file");
  size_t header_len, offset;
  if (bytes[6] == 1) {
    header_len = bytes[8] | (bytes[9] << 8);
    offset = 10;
  } else {
    header_len = bytes[8] | (bytes[9] << 8) | (bytes[10] << 16) | (size_t(bytes[11]) << 24);
    offset = 12;
  }
  if (offset + header_len > mapping_bytes_) throw std::runtime_error(path + ": truncated header");
  std::string header(reinterpret_cast<const char*>(bytes + offset), header_len);
  std::string descr = header_value(header, "descr", path);
  if (descr != "<f4")
    throw std::runtime_error(path + ": dtype " + descr + ", the runner reads float32 (<f4)");
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
  data_ = reinterpret_cast<const float*>(bytes + offset + header_len);
  if (offset + header_len + count * sizeof(float) > mapping_bytes_)
    throw std::runtime_error(path + ": truncated data (" + std::to_string(count) +
                             " floats expected)");
}

NpyArray::~NpyArray() {
  if (mapping_ != nullptr) ::munmap(mapping_, mapping_bytes_);
}

std::vector<int64_t> NpyArray::row_shape() const {
  std::vector<int64_t> shape = shape_;
  if (!shape.empty()) shape[0] = 1;
  return shape;
}

size_t NpyArray::row_size() const {
  size_t size = 1;
  for (size_t i = 1; i < shape_.size(); ++i) size *= static_cast<size_t>(shape_[i]);
  return size;
}

const float* NpyArray::row(int64_t index) const {
  if (index < 0 || index >= rows()) throw std::out_of_range("row index out of range");
  return data_ + static_cast<size_t>(index) * row_size();
}

}  // namespace aiot
