/*
 * zspage_lock.pml - Promela model of uzram's zspage lock protocol and of the
 * compaction / migration / deferred-free / reader interplay (validated translation mode).
 *
 * Sources modelled: src/sync/zspage_lock.h (the lock word), src/pool/access.cc
 * (lock_object: load entry -> zspage -> lock_read -> re-load, retry), src/pool/compaction.cc
 * (compact_class / migrate_objects_locked), src/pool/free.cc (free_impl), src/pool/pool.cc (alloc_impl,
 * free_zspage_locked), src/pool/migration.cc (migrate_impl, deferred_free_job,
 * lock_zspage_frames). Rules: docs/locking.md "The three rules".
 *
 * Run it with tests/model/run-model.sh; what is abstracted and what each variant shows is in
 * docs/model-checking.md.
 *
 * Configuration switches (spin -DNAME ...):
 *   NREADERS=1|2       plain readers (reader 0 reads H0, reader 1 reads H1); default 2
 *   STICK=0|1          readers (and the user) may fall asleep forever while holding the
 *                      read lock; default 1
 *   NO_USER            leave out the user that holds a read lock while calling free/malloc
 *   CSTEPS=n           compaction steps (one source zspage each); default 2
 *   WITH_MIGRATION     add a frame migrator and the deferred-free worker
 *   LIVENESS           add the LTL claim "the compactor finishes" (check with pan -a -f)
 * Broken variants (spin must find an error):
 *   WRITER_WAITS             compactor waits for readers instead of try-locking
 *   MIGRATOR_WAITS           migrator waits for readers instead of try-locking
 *   EARLY_UNLOCK             reader drops the zspage lock before it has finished reading
 *   NO_VALIDATE              reader skips the re-load of the entry after lock_read
 *   PUBLISH_BEFORE_COPY      compactor publishes the new location before copying the bytes
 *   TRYLOCK_IGNORES_READERS  try_lock_write checks only the writer bit
 *   MIGRATOR_NO_LOCK         migrator does not write-lock the zspage
 *   FREE_IGNORES_ISOLATION   free_zspage_locked frees a zspage whose frame a migration
 *                            holds (no try-lock of the isolation bit, no deferral)
 *   WRITER_BLOCKS            compactor drops and re-takes the class lock while holding the
 *                            zspage write lock (a blocking step under it: breaks rule 1)
 * Probe (expected to fail; documents a reachable interleaving):
 *   ABA_PROBE          assert that a reader's validation re-load sees the very publication
 *                      its first load saw (fails: the entry can be re-published with the same
 *                      value; see docs/model-checking.md).
 */

#ifndef NREADERS
#define NREADERS 2
#endif
#ifndef STICK
#define STICK 1
#endif
#ifndef CSTEPS
#define CSTEPS 2
#endif

/* Sizes. Several inlines below are written out for these values. */
#define NZ 2            /* zspage descriptors */
#define NS 2            /* object slots per zspage */
#define NF 3            /* frames: one per zspage plus one spare */
#define NH 4            /* handles: H0, H1 read by readers; H2 freed and H3 allocated by the user */

#define W 64            /* writer bit of the lock word; bits below it count readers */
#define NONE 255
#define GARBAGE 0       /* contents of a free slot / a free frame */
#define VAL(h) ((h) + 1)

/* zspage states (ZsState) */
#define ZFREE 0
#define ZFRESH 1
#define ZLISTED 2
#define ZISOLATED 3
#define ZDEFERRED 4

/* ---- shared state ----------------------------------------------------------------- */
byte lk[NZ];            /* ZsPageLock word: W | number of readers */
byte rin[NZ];           /* ghost: readers holding the zspage lock */
byte wown[NZ];          /* ghost: pid + 1 of the zspage's write holder, 0 = none */

byte zst[NZ];           /* ZsPage::state           (class lock) */
byte zinuse[NZ];        /* ZsPage::inuse           (class lock) */
byte hdr[NZ * NS];      /* object header: handle + 1, 0 = free slot (class lock) */
byte zfr[NZ];           /* ZsPage::frames[0]       (class lock + zspage write lock) */

bool fused[NF];         /* frame allocated from the arena */
byte fown[NF];          /* FrameInfo owner zspage, NONE = not owned */
bool fiso[NF];          /* FrameInfo isolation bit (a try-lock) */
byte fdata[NF * NS];    /* the bytes: slot s of frame f is fdata[f * NS + s] */

byte ent[NH];           /* handle entry: location z * NS + s, NONE = not allocated */
byte eseq[NH];          /* ghost: number of publications of the entry */

byte cl;                /* the class lock (SpinLock): 0 free, else holder pid + 1 */
bool kick;              /* deferred-free worker kicked */
bool comp_done;         /* ghost: the compactor returned */

#ifdef LIVENESS
ltl compactor_finishes { <> comp_done }
#endif

/* ---- locks -------------------------------------------------------------------------- */
/* Rule 1 (the model's might_sleep()): a process holding a zspage write lock never takes a
   step that can block. Asserted in every blocking statement (class lock, read lock, frame
   bit wait, the broken waiting write lock). */
#define HOLDS_NO_WRITE_LOCK (wown[0] != _pid + 1 && wown[1] != _pid + 1)

inline class_lock() { atomic { cl == 0 -> assert(HOLDS_NO_WRITE_LOCK); cl = _pid + 1 } }
inline class_unlock() { assert(cl == _pid + 1); cl = 0 }

/* lock_read: CAS v -> v + 1 only when the writer bit is clear; spin (block) otherwise. */
inline read_lock(z) {
  atomic {
    (lk[z] & W) == 0 ->
    assert(HOLDS_NO_WRITE_LOCK);
    assert(wown[z] == 0);               /* (b) mutual exclusion */
    lk[z]++;
    rin[z]++
  }
}
inline read_unlock(z) {
  atomic { assert((lk[z] & (W - 1)) > 0); lk[z]--; rin[z]-- }
}

/* try_lock_write: CAS 0 -> W; never waits. */
inline try_lock_write(z, ok) {
  atomic {
    if
#ifdef TRYLOCK_IGNORES_READERS
    :: (lk[z] & W) == 0 ->
#else
    :: lk[z] == 0 ->
#endif
       assert(rin[z] == 0);             /* (b) mutual exclusion */
       lk[z] = lk[z] | W;
       wown[z] = _pid + 1;
       ok = 1
    :: else -> ok = 0
    fi
  }
}
/* BROKEN: a writer that waits (spins) until the readers are gone. */
inline wait_lock_write(z) {
  atomic {
    lk[z] == 0 ->
    assert(HOLDS_NO_WRITE_LOCK);
    assert(rin[z] == 0);
    lk[z] = W;
    wown[z] = _pid + 1
  }
}
inline unlock_write(z) {
  atomic { assert(wown[z] == _pid + 1 && (lk[z] & W) != 0); lk[z] = lk[z] - W; wown[z] = 0 }
}

/* free_zspage_locked (caller holds the class lock): try-lock the frame; if a migration holds
   it, leave the empty zspage listed (list 0) for the deferred worker. The frames and the
   descriptor are released at once (the real code releases them right after the class
   unlock); a freed frame's bytes become garbage. */
inline free_zspage_locked(z, ok) {
  atomic {
    if
#ifndef FREE_IGNORES_ISOLATION
    :: fiso[zfr[z]] -> ok = 0
#endif
    :: else ->
       fown[zfr[z]] = NONE;
       fused[zfr[z]] = 0;
       fdata[zfr[z] * NS] = GARBAGE;
       fdata[zfr[z] * NS + 1] = GARBAGE;
       zst[z] = ZFREE;
       ok = 1
    fi
  }
}

/* ---- readers ------------------------------------------------------------------------ */
/* read_begin(h) .. read_end(h): translate, read-lock, validate, use the bytes (possibly
   sleeping any number of steps, or forever), unlock. */
proctype reader(byte h; bool may_stick)
{
  byte v, z, a, d, s0;
again:
  atomic { v = ent[h]; s0 = eseq[h]; z = v / NS }   /* load the entry (acquire) */
  read_lock(z);
#ifndef NO_VALIDATE
  if
  :: ent[h] != v -> read_unlock(z); goto again    /* moved meanwhile: retry */
  :: else ->
#ifdef ABA_PROBE
     assert(eseq[h] == s0)
#else
     skip
#endif
  fi;
#endif
  a = zfr[z] * NS + v % NS;             /* read_begin returns a pointer into the frame */
  d = fdata[a];
  assert(d == VAL(h));                  /* (a) the object's data */
  /* The caller uses the bytes and may sleep here, holding the read lock. A finite sleep is
     any interleaving of the other processes at this point; may_stick adds "never wakes up". */
  if
  :: may_stick -> goto end_asleep
  :: true
  fi;
#ifdef EARLY_UNLOCK
  read_unlock(z);
#endif
  d = fdata[a];                         /* still using the bytes */
  assert(d == VAL(h));
#ifndef EARLY_UNLOCK
  read_unlock(z);                       /* read_end */
#endif
  goto finished;
end_asleep:
  false;
finished:
  skip
}

/* ---- a reader that calls free and malloc while holding its read lock ------------------ */
proctype user(bool may_stick)
{
  byte uh, v, z, a, d;
  byte fv, fz, nz, nf, t;
  bool ok;

  if
  :: uh = 0
  :: uh = 1
  fi;
again:
  atomic { v = ent[uh]; z = v / NS }
  read_lock(z);
  if
  :: ent[uh] != v -> read_unlock(z); goto again
  :: else
  fi;
  a = zfr[z] * NS + v % NS;

  /* zs_free(H2) (free_impl): lock the class the handle's index belongs to (its chunk's
     group; one class here), then read the entry under it - every writer of an allocated
     entry holds the class lock, so no re-validation - and free the slot */
  class_lock();
  fv = ent[2];
  fz = fv / NS;
  atomic { ent[2] = NONE; hdr[fv] = 0; zinuse[fz]-- }   /* the entry becomes parked */
  fdata[zfr[fz] * NS + fv % NS] = GARBAGE;        /* nothing writes the slot now (the free
                                                     list is in the entries); kept as the
                                                     worst case: a freed slot is garbage */
  if
  :: zinuse[fz] == 0 && zst[fz] == ZLISTED ->
     free_zspage_locked(fz, ok);
     if
     :: !ok -> kick = 1
     :: else
     fi
  :: else
  fi;
  class_unlock();

  /* zs_malloc(H3) (alloc_impl) */
  class_lock();
  atomic {                                        /* a listed zspage with a free slot */
    if
    :: zst[0] == ZLISTED && zinuse[0] < NS -> nz = 0
    :: zst[1] == ZLISTED && zinuse[1] < NS -> nz = 1
    :: else -> nz = NONE
    fi
  }
  if
  :: nz == NONE ->
     class_unlock();                              /* create_zspage with no lock held */
     atomic {
       if
       :: zst[0] == ZFREE -> nz = 0
       :: zst[1] == ZFREE -> nz = 1
       :: else -> nz = NONE
       fi;
       if
       :: nz != NONE -> zst[nz] = ZFRESH          /* descriptor reused; lk[nz] persists */
       :: else
       fi
     }
     if
     :: nz != NONE ->
        atomic {
          if
          :: !fused[0] -> nf = 0
          :: !fused[1] -> nf = 1
          :: !fused[2] -> nf = 2
          :: else -> nf = NONE
          fi;
          if
          :: nf != NONE -> fused[nf] = 1; zfr[nz] = nf; zinuse[nz] = 0;
                           hdr[nz * NS] = 0; hdr[nz * NS + 1] = 0
          :: else -> zst[nz] = ZFREE; nz = NONE   /* -ENOMEM */
          fi
        }
        if
        :: nz != NONE ->
           class_lock();
           atomic { fown[nf] = nz; zst[nz] = ZLISTED }   /* publish_zspage_locked */
        :: else
        fi
     :: else
     fi
  :: else
  fi;
  if
  :: nz != NONE ->
     atomic {                                     /* obj_pop_locked */
       if
       :: hdr[nz * NS] == 0 -> t = 0
       :: hdr[nz * NS + 1] == 0 -> t = 1
       fi;
       hdr[nz * NS + t] = 3 + 1;
       zinuse[nz]++
     }
     fdata[zfr[nz] * NS + t] = VAL(3);            /* the new object's bytes */
     atomic { ent[3] = nz * NS + t; eseq[3]++ }   /* publish (release) */
     class_unlock()
  :: else
  fi;

  d = fdata[a];
  assert(d == VAL(uh));                           /* (a) our object did not move */
  if
  :: may_stick -> goto end_asleep
  :: true
  fi;
  read_unlock(z);
  goto finished;
end_asleep:
  false;
finished:
  skip
}

/* ---- the compactor (compact_class + migrate_objects_locked) -------------------------- */
proctype compactor()
{
  byte src, dst, s, t, h, steps;
  bool ok, freed;

  steps = 0;
  do
  :: steps == CSTEPS -> break
  :: else ->
     class_lock();
     /* pick a (destination, source) pair: any two listed zspages with room / objects.
        This over-approximates the real "fullest non-full / emptiest non-empty" choice. */
     atomic {
       if
       :: zst[0] == ZLISTED && zst[1] == ZLISTED && zinuse[0] < NS && zinuse[1] > 0 ->
          dst = 0; src = 1
       :: zst[0] == ZLISTED && zst[1] == ZLISTED && zinuse[1] < NS && zinuse[0] > 0 ->
          dst = 1; src = 0
       :: else -> dst = NONE
       fi
     }
     if
     :: dst == NONE -> class_unlock(); break
     :: else
     fi;
#ifdef WRITER_WAITS
     wait_lock_write(src);
     ok = 1;
#else
     try_lock_write(src, ok);           /* rule 2: never wait for readers */
#endif
     if
     :: !ok -> class_unlock(); break     /* a reader holds it: stop the pass */
     :: else
     fi;
#ifdef WRITER_BLOCKS
     class_unlock();                     /* BROKEN: "yields" the class lock while holding */
     class_lock();                       /* the write lock, i.e. may block holding it */
#endif
     atomic { zst[src] = ZISOLATED; zst[dst] = ZISOLATED };
     /* Move objects until the destination is full or the source is empty. The real loop
        visits the source's slots in order; any order is allowed here (over-approximation). */
     do
     :: zinuse[src] > 0 && zinuse[dst] < NS ->
        atomic {                                         /* obj_pop_locked(dst) */
          if
          :: hdr[src * NS] != 0 -> s = 0
          :: hdr[src * NS + 1] != 0 -> s = 1
          fi;
          h = hdr[src * NS + s] - 1;
          if
          :: hdr[dst * NS] == 0 -> t = 0
          :: hdr[dst * NS + 1] == 0 -> t = 1
          fi;
          hdr[dst * NS + t] = h + 1;
          zinuse[dst]++
        }
#ifdef PUBLISH_BEFORE_COPY
        atomic { ent[h] = dst * NS + t; eseq[h]++ };
        fdata[zfr[dst] * NS + t] = fdata[zfr[src] * NS + s];
#else
        fdata[zfr[dst] * NS + t] = fdata[zfr[src] * NS + s];   /* copy_between */
        atomic { ent[h] = dst * NS + t; eseq[h]++ };          /* publish (release) */
#endif
        atomic {                                         /* obj_push_locked(src) */
          hdr[src * NS + s] = 0;
          zinuse[src]--;
          fdata[zfr[src] * NS + s] = GARBAGE
        }
     :: else -> break
     od;
     unlock_write(src);
     atomic { zst[src] = ZLISTED; zst[dst] = ZLISTED };
     if
     :: zinuse[src] == 0 ->
        free_zspage_locked(src, freed);
        if
        :: !freed -> kick = 1
        :: else
        fi
     :: else
     fi;
     class_unlock();
     steps++
  od;
  comp_done = 1
}

/* ---- frame migration (migrate_impl) --------------------------------------------------- */
proctype migrator()
{
  byte f, z, tgt;
  bool ok;

  if
  :: f = 0
  :: f = 1
  :: f = 2
  fi;
  atomic {                                        /* step 1: isolate (bit_try_lock) */
    if
    :: fiso[f] -> ok = 0
    :: else -> fiso[f] = 1; ok = 1
    fi
  }
  if
  :: !ok -> goto done                             /* busy */
  :: else
  fi;
  z = fown[f];
  if
  :: z == NONE -> goto unisolate                  /* not owned */
  :: else
  fi;
  atomic {                                        /* step 2: target frame, no lock held */
    if
    :: !fused[0] -> tgt = 0
    :: !fused[1] -> tgt = 1
    :: !fused[2] -> tgt = 2
    :: else -> tgt = NONE
    fi;
    if
    :: tgt != NONE -> fused[tgt] = 1
    :: else
    fi
  }
  if
  :: tgt == NONE -> goto unisolate
  :: else
  fi;
  class_lock();                                   /* step 3 */
  /* (e) "The owner cannot be freed meanwhile": while we hold the frame's isolation bit its
     owner stays the same live zspage, so the re-check below never fails. */
  assert(fown[f] == z && zst[z] != ZFREE);
  if
  :: fown[f] == z && zst[z] != ZFREE ->
#if defined(MIGRATOR_WAITS)
     wait_lock_write(z);
     ok = 1
#elif defined(MIGRATOR_NO_LOCK)
     ok = 1
#else
     try_lock_write(z, ok)                        /* step 4: never wait for readers */
#endif
  :: else -> ok = 0
  fi;
  if
  :: !ok -> class_unlock(); fused[tgt] = 0; goto unisolate
  :: else
  fi;
  fdata[tgt * NS] = fdata[f * NS];                /* step 5: copy the frame ... */
  fdata[tgt * NS + 1] = fdata[f * NS + 1];
  atomic { zfr[z] = tgt; fown[tgt] = z; fown[f] = NONE }   /* ... and switch to it */
#ifndef MIGRATOR_NO_LOCK
  unlock_write(z);                                /* step 6 */
#endif
  class_unlock();
  atomic {                                        /* end the isolation, free the old frame */
    fiso[f] = 0;
    fused[f] = 0;
    fdata[f * NS] = GARBAGE;
    fdata[f * NS + 1] = GARBAGE
  }
  goto done;
unisolate:
  fiso[f] = 0;
done:
  skip
}

/* ---- the deferred-free worker (deferred_free_job + lock_zspage_frames) ---------------- */
proctype deferred()
{
  byte z, f;
  bool ok;

end_idle:
  kick;
  kick = 0;
  do
  :: class_lock();                                /* step 1: take an empty zspage off list 0 */
     atomic {
       if
       :: zst[0] == ZLISTED && zinuse[0] == 0 -> z = 0
       :: zst[1] == ZLISTED && zinuse[1] == 0 -> z = 1
       :: else -> z = NONE
       fi;
       if
       :: z != NONE -> zst[z] = ZDEFERRED
       :: else
       fi
     }
     class_unlock();
     if
     :: z == NONE -> break
     :: else
     fi;
     do                                           /* step 2: lock_zspage_frames */
     :: read_lock(z);
        f = zfr[z];
        atomic {
          if
          :: !fiso[f] -> fiso[f] = 1; ok = 1
          :: else -> ok = 0
          fi
        }
        read_unlock(z);
        if
        :: ok -> break
        :: else -> atomic { !fiso[f] -> assert(HOLDS_NO_WRITE_LOCK) }  /* bit_wait_clear */
        fi
     od;
     class_lock();                                /* step 3 */
     atomic {
       fown[f] = NONE;
       fiso[f] = 0;
       fused[f] = 0;
       fdata[f * NS] = GARBAGE;
       fdata[f * NS + 1] = GARBAGE;
       zst[z] = ZFREE
     }
     class_unlock()
  od;
  goto end_idle
}

/* ---- initial pool ---------------------------------------------------------------------
   Z0 (frame 0): slot 0 = H0, slot 1 = H2.   Z1 (frame 1): slot 0 free, slot 1 = H1.
   Frame 2 is free. H3 is not allocated yet. */
init
{
  atomic {
    zst[0] = ZLISTED; zinuse[0] = 2; zfr[0] = 0;
    zst[1] = ZLISTED; zinuse[1] = 1; zfr[1] = 1;
    hdr[0] = 0 + 1; hdr[1] = 2 + 1; hdr[2] = 0; hdr[3] = 1 + 1;
    fused[0] = 1; fown[0] = 0; fused[1] = 1; fown[1] = 1; fown[2] = NONE;
    fdata[0] = VAL(0); fdata[1] = VAL(2); fdata[2] = GARBAGE; fdata[3] = VAL(1);
    ent[0] = 0; ent[1] = 3; ent[2] = 1; ent[3] = NONE;

    run reader(0, STICK);
#if NREADERS > 1
    run reader(1, STICK);
#endif
#ifndef NO_USER
    run user(STICK);
#endif
    run compactor();
#ifdef WITH_MIGRATION
    run migrator();
    run deferred();
#endif
  }
}
