// Engine errors: C++ code throws endless::error; the C API turns it into a status code and
// the thread's last-error text.
#pragma once
#include <stdexcept>
#include <string>

#include "endless.h"

namespace endless {

class error : public std::runtime_error {
public:
    error(endless_status status, const std::string &message) : std::runtime_error(message), status_(status) {}
    endless_status status() const { return status_; }
private:
    endless_status status_;
};

[[noreturn]] inline void fail(endless_status status, const std::string &message) { throw error(status, message); }

}  // namespace endless
