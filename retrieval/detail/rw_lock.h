#pragma once
// A reader-writer lock that prefers writers. std::shared_mutex on glibc prefers readers: under a
// steady stream of queries an upsert or a delete could wait without bound. With writer
// preference a waiting writer holds back new readers, so writes wait only for the queries
// already running. Meets the SharedMutex requirements (std::shared_lock, std::unique_lock).
//
// Thread safety: thread-safe, as a mutex is. Not recursive.

#include <pthread.h>

#include "common/check.h"

namespace sluice::retrieval::detail {

class RwLock {
public:
    RwLock() {
        pthread_rwlockattr_t attr;
        pthread_rwlockattr_init(&attr);
        pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
        int rc = pthread_rwlock_init(&lock_, &attr);
        pthread_rwlockattr_destroy(&attr);
        SLUICE_CHECK(rc == 0, "pthread_rwlock_init failed");
    }
    ~RwLock() { pthread_rwlock_destroy(&lock_); }
    RwLock(const RwLock&) = delete;
    RwLock& operator=(const RwLock&) = delete;

    void lock() { SLUICE_CHECK(pthread_rwlock_wrlock(&lock_) == 0, "rwlock wrlock failed"); }
    bool try_lock() { return pthread_rwlock_trywrlock(&lock_) == 0; }
    void unlock() { pthread_rwlock_unlock(&lock_); }
    void lock_shared() { SLUICE_CHECK(pthread_rwlock_rdlock(&lock_) == 0, "rwlock rdlock failed"); }
    bool try_lock_shared() { return pthread_rwlock_tryrdlock(&lock_) == 0; }
    void unlock_shared() { pthread_rwlock_unlock(&lock_); }

private:
    pthread_rwlock_t lock_;
};

}  // namespace sluice::retrieval::detail
