// util/unix_socket.h - Unix stream sockets (layer 0): listening in a private directory, and
// connecting; the one helper behind the control socket (control/server.cc,
// control/client.cc) and the NBD server's socket (nbd/server.cc). docs/uzram-serve.md,
// "Security: files and local sockets".
//
// listen_unix_socket(PATH):
//  1. The socket's directory (PATH up to its last '/', "." when none) is created with mode
//     0700, missing levels included (mkdir -p). An existing one must be a real directory
//     (not a symbolic link), owned by the effective uid, and not group- or
//     world-writable (ssh-agent's rule), else EPERM with a message that says which rule.
//     Every directory above it (walked through "..") must be owned by root or the
//     effective uid and, if writable by others, sticky (as /tmp is): else its owner or
//     anyone could rename the socket directory and put another in its place (EPERM).
//  2. Under an exclusive flock() on that directory (two servers starting at once do not
//     remove each other's sockets): an existing PATH that is a socket nobody listens on is
//     removed (stale); a live one gives EBUSY; anything else (file, symbolic link,
//     directory) is left alone and gives EEXIST.
//  3. The socket's mode is set to 0600 on its descriptor before bind() (Linux creates the
//     file with the socket inode's mode, less the umask: the process umask is never
//     changed, other threads may run), then corrected without following symbolic links if
//     the umask took owner bits; the directory is checked to be the one step 1 checked.
// Returns the listening descriptor (close-on-exec); the caller unlinks PATH when done.
#ifndef UZRAM_UTIL_UNIX_SOCKET_H_
#define UZRAM_UTIL_UNIX_SOCKET_H_

#include <string>

#include "uzram/result.h"

namespace uzram {

struct UnixListenOptions {
  int backlog = 64;
  bool nonblocking = false;  // SOCK_NONBLOCK on the listening socket (accepted ones: caller)
};

// Errors (generic category): ENAMETOOLONG (path empty or longer than sun_path), EPERM
// (directory owner, mode or symbolic link), ENOTDIR, EBUSY (a server is listening), EEXIST
// (PATH is not a socket), and the system's for mkdir/socket/bind/listen. *msg gets one line
// that starts with the path.
[[nodiscard]] Result<int> listen_unix_socket(const std::string& path, std::string* msg,
                                             const UnixListenOptions& options = {}) noexcept;

// Step 1 alone: creates `dir` (0700) or checks an existing one by the same rules.
[[nodiscard]] Result<void> secure_socket_dir(const std::string& dir, std::string* msg) noexcept;

// Connects a blocking Unix stream socket (close-on-exec) to PATH; timeout_ms > 0 bounds
// the connect and every later send and receive (SO_SNDTIMEO, SO_RCVTIMEO). Returns the
// descriptor. Errors (generic category): ENAMETOOLONG (path empty or longer than
// sun_path: "socket path empty or too long: 'PATH'"), and the system's for socket
// ("socket: ...") and connect ("cannot connect to PATH: ...": ENOENT, ECONNREFUSED,
// EACCES, EAGAIN when the server's backlog is full).
[[nodiscard]] Result<int> connect_unix_socket(const std::string& path, std::string* msg,
                                              int timeout_ms = 0) noexcept;

}  // namespace uzram

#endif  // UZRAM_UTIL_UNIX_SOCKET_H_
