// nbd/admission.h - which new connection may start negotiating, and when: the server's
// slot policy as a pure function (server.cc applies it under its mutex; tested alone).
//
// Slots: negotiating + transmitting <= max_connections, negotiating <= max_negotiating.
// Threads of connections being closed (evicted, timed out) still count toward
// max_connections + max_negotiating, so closing connections cannot pile up.
#ifndef UZRAM_NBD_ADMISSION_H_
#define UZRAM_NBD_ADMISSION_H_

#include "nbd/deadline.h"

namespace uzram::nbd {

struct AdmissionLimits {
  unsigned max_connections = 64;
  unsigned max_negotiating = 16;
  Clock::duration grace{};  // a negotiating connection younger than this is not evicted
};

struct AdmissionState {
  unsigned negotiating = 0;
  unsigned transmitting = 0;
  unsigned threads = 0;                  // connection threads alive, closing ones included
  Clock::time_point oldest_negotiating;  // accept time of the oldest (negotiating > 0)
};

enum class Admit {
  yes,           // a free slot: accept
  evict_oldest,  // accept, closing the oldest negotiating connection
  wait,          // leave it in the listen queue until `until` or until a slot frees
  refuse,        // every slot is in transmission: accept and close at once
};

struct AdmitDecision {
  Admit what;
  Clock::time_point until{};  // Admit::wait with a time (else: until a thread ends)
  bool timed = false;
};

inline AdmitDecision admission(const AdmissionLimits& l, const AdmissionState& s,
                               Clock::time_point now) noexcept {
  if (s.threads >= l.max_connections + l.max_negotiating) return {Admit::wait};
  if (s.transmitting >= l.max_connections) return {Admit::refuse};
  if (s.negotiating < l.max_negotiating && s.transmitting + s.negotiating < l.max_connections)
    return {Admit::yes};
  // Full, with at least one connection negotiating (transmitting < max_connections).
  const Clock::time_point ripe = s.oldest_negotiating + l.grace;
  if (now >= ripe) return {Admit::evict_oldest};
  return {Admit::wait, ripe, true};
}

}  // namespace uzram::nbd

#endif  // UZRAM_NBD_ADMISSION_H_
