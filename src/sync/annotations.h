// sync/annotations.h - clang thread-safety attributes (layer 1). No-ops on other compilers.
// Every lock type of the family is a capability (sync/mutex.h lists them); guarded fields
// say ZS_GUARDED_BY, functions called with a lock held ZS_REQUIRES, and clang checks both
// at every build (-Wthread-safety -Werror in the clang presets).
#ifndef UZRAM_SYNC_ANNOTATIONS_H_
#define UZRAM_SYNC_ANNOTATIONS_H_

#if defined(__clang__)
#define ZS_TSA(x) __attribute__((x))
#else
#define ZS_TSA(x)
#endif

#define ZS_CAPABILITY(x) ZS_TSA(capability(x))
#define ZS_SCOPED_CAPABILITY ZS_TSA(scoped_lockable)
#define ZS_GUARDED_BY(x) ZS_TSA(guarded_by(x))
#define ZS_PT_GUARDED_BY(x) ZS_TSA(pt_guarded_by(x))
#define ZS_REQUIRES(...) ZS_TSA(requires_capability(__VA_ARGS__))
#define ZS_REQUIRES_SHARED(...) ZS_TSA(requires_shared_capability(__VA_ARGS__))
#define ZS_ACQUIRE(...) ZS_TSA(acquire_capability(__VA_ARGS__))
#define ZS_ACQUIRE_SHARED(...) ZS_TSA(acquire_shared_capability(__VA_ARGS__))
#define ZS_RELEASE(...) ZS_TSA(release_capability(__VA_ARGS__))
#define ZS_RELEASE_SHARED(...) ZS_TSA(release_shared_capability(__VA_ARGS__))
#define ZS_TRY_ACQUIRE(...) ZS_TSA(try_acquire_capability(__VA_ARGS__))
#define ZS_TRY_ACQUIRE_SHARED(...) ZS_TSA(try_acquire_shared_capability(__VA_ARGS__))
#define ZS_EXCLUDES(...) ZS_TSA(locks_excluded(__VA_ARGS__))
#define ZS_ASSERT_CAPABILITY(...) ZS_TSA(assert_capability(__VA_ARGS__))
#define ZS_ASSERT_SHARED_CAPABILITY(...) ZS_TSA(assert_shared_capability(__VA_ARGS__))
#define ZS_RETURN_CAPABILITY(x) ZS_TSA(lock_returned(x))
#define ZS_NO_THREAD_SAFETY_ANALYSIS ZS_TSA(no_thread_safety_analysis)

// ThreadSanitizer mutex annotations, so race reports name uzram's custom locks.
#if defined(__SANITIZE_THREAD__)
#define UZRAM_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UZRAM_TSAN 1
#endif
#endif

#if defined(UZRAM_TSAN)
#include <sanitizer/tsan_interface.h>
#define ZS_TSAN_MUTEX_CREATE(m, f) __tsan_mutex_create(m, f)
#define ZS_TSAN_MUTEX_PRE_LOCK(m, f) __tsan_mutex_pre_lock(m, f)
#define ZS_TSAN_MUTEX_POST_LOCK(m, f, r) __tsan_mutex_post_lock(m, f, r)
#define ZS_TSAN_MUTEX_PRE_UNLOCK(m, f) __tsan_mutex_pre_unlock(m, f)
#define ZS_TSAN_MUTEX_POST_UNLOCK(m, f) __tsan_mutex_post_unlock(m, f)
#define ZS_TSAN_READ_LOCK __tsan_mutex_read_lock
#define ZS_TSAN_TRY_LOCK __tsan_mutex_try_lock
#define ZS_TSAN_TRY_LOCK_FAILED __tsan_mutex_try_lock_failed
#define ZS_TSAN_NOT_STATIC __tsan_mutex_not_static
#else
#define ZS_TSAN_MUTEX_CREATE(m, f) ((void)0)
#define ZS_TSAN_MUTEX_PRE_LOCK(m, f) ((void)0)
#define ZS_TSAN_MUTEX_POST_LOCK(m, f, r) ((void)0)
#define ZS_TSAN_MUTEX_PRE_UNLOCK(m, f) ((void)0)
#define ZS_TSAN_MUTEX_POST_UNLOCK(m, f) ((void)0)
#define ZS_TSAN_READ_LOCK 0u
#define ZS_TSAN_TRY_LOCK 0u
#define ZS_TSAN_TRY_LOCK_FAILED 0u
#define ZS_TSAN_NOT_STATIC 0u
#endif

#endif  // UZRAM_SYNC_ANNOTATIONS_H_
