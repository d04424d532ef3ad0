// SHA-256 (FIPS 180-4), for model fingerprints and snapshot checksums.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace endless {

class sha256 {
public:
    sha256();
    void update(const void *data, size_t n);
    void finish(uint8_t out[32]);
    std::string hex();  // finishes and returns the digest in lowercase hex
private:
    void block(const uint8_t *p);
    uint32_t h_[8];
    uint8_t buf_[64];
    size_t buf_len_ = 0;
    uint64_t total_ = 0;
};

}  // namespace endless
