// store/file_checks.h - checks shared by the files the store opens on a user's word
// (backing_dev, algorithm_params dict=): what kind of file, and whether it lives on a
// pseudo file system (proc, sysfs, ...) whose "files" are kernel interfaces, not data.
#ifndef UZRAM_STORE_FILE_CHECKS_H_
#define UZRAM_STORE_FILE_CHECKS_H_

#include <sys/types.h>

namespace uzram {

// "a regular file", "a directory", "a FIFO", "a character device", ...
const char* file_type_name(mode_t mode) noexcept;

// The pseudo file system `fd` is on ("proc", "sysfs", ...), or nullptr.
const char* pseudo_fs_name(int fd) noexcept;

}  // namespace uzram

#endif  // UZRAM_STORE_FILE_CHECKS_H_
